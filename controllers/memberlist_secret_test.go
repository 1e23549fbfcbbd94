package controllers

import (
	"bytes"
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func TestMemberlistSecret(t *testing.T) {
	needControlPlane(t)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "ml-"}}
	if err := k8s.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	name := types.NamespacedName{Namespace: ns.Name, Name: "herald-memberlist"}
	m := &memberlistSecret{reader: k8s, writer: k8s, name: name}

	created, err := m.ensure(ctx)
	if err != nil || !created {
		t.Fatalf("first ensure: created=%v err=%v, want a new Secret", created, err)
	}
	var s corev1.Secret
	if err := k8s.Get(ctx, name, &s); err != nil {
		t.Fatal(err)
	}
	key := s.Data[MemberlistKeyField]
	if len(key) != MemberlistKeySize {
		t.Fatalf("key is %d bytes, want %d", len(key), MemberlistKeySize)
	}
	if bytes.Equal(key, make([]byte, MemberlistKeySize)) {
		t.Fatal("key is all zeros")
	}

	// A second run, or another replica, keeps the key.
	created, err = m.ensure(ctx)
	if err != nil || created {
		t.Fatalf("second ensure: created=%v err=%v, want the existing Secret kept", created, err)
	}
	var again corev1.Secret
	if err := k8s.Get(ctx, name, &again); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Data[MemberlistKeyField], key) {
		t.Fatal("the key changed on the second ensure")
	}

	// An operator's Secret, even a bad one, is never overwritten: the speakers report its size.
	s.Data[MemberlistKeyField] = []byte("short")
	if err := k8s.Update(ctx, &s); err != nil {
		t.Fatal(err)
	}
	if _, err := m.ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Get(ctx, name, &again); err != nil {
		t.Fatal(err)
	}
	if string(again.Data[MemberlistKeyField]) != "short" {
		t.Fatal("ensure overwrote an existing Secret")
	}

	// A missing namespace is an error (Start retries it), not a panic or a silent success.
	missing := &memberlistSecret{reader: k8s, writer: k8s, name: types.NamespacedName{Namespace: "no-such-ns", Name: "x"}}
	if _, err := missing.ensure(ctx); err == nil {
		t.Fatal("ensure in a missing namespace succeeded")
	}
}
