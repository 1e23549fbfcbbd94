package controllers

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// MemberlistKeyField is the Secret data field holding the speakers' 32-byte gossip key, used as is.
const MemberlistKeyField = "key"

// MemberlistKeySize is the length of the gossip key: AES-256.
const MemberlistKeySize = 32

// +kubebuilder:rbac:groups="",namespace=herald-system,resources=secrets,verbs=get;create

// memberlistSecret creates the speakers' gossip key Secret when it does not exist. An existing Secret is never
// changed, whatever it holds: operators rotate the key by editing it, and a speaker refuses a key of the wrong
// size with a clear error.
type memberlistSecret struct {
	reader client.Reader // uncached: the controller does not watch Secrets
	writer client.Client
	name   types.NamespacedName
}

// Start ensures the Secret, retrying (the namespace may not exist yet) until it succeeds or ctx ends.
func (m *memberlistSecret) Start(ctx context.Context) error {
	logger := log.FromContext(ctx).WithValues("secret", m.name.String())
	return wait.PollUntilContextCancel(ctx, 2*time.Second, true, func(ctx context.Context) (bool, error) {
		created, err := m.ensure(ctx)
		if err != nil {
			logger.Error(err, "ensuring the memberlist Secret; retrying")
			return false, nil
		}
		if created {
			logger.Info("created the memberlist gossip key Secret")
		}
		return true, nil
	})
}

func (m *memberlistSecret) ensure(ctx context.Context) (bool, error) {
	var s corev1.Secret
	err := m.reader.Get(ctx, m.name, &s)
	if err == nil {
		return false, nil
	}
	if !apierrors.IsNotFound(err) {
		return false, fmt.Errorf("getting Secret %s: %w", m.name, err)
	}
	key := make([]byte, MemberlistKeySize)
	if _, err := rand.Read(key); err != nil {
		return false, fmt.Errorf("generating the gossip key: %w", err)
	}
	s = corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: m.name.Namespace, Name: m.name.Name,
			Labels: map[string]string{"app.kubernetes.io/part-of": "herald"}},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{MemberlistKeyField: key},
	}
	if err := m.writer.Create(ctx, &s); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return false, nil
		}
		return false, fmt.Errorf("creating Secret %s: %w", m.name, err)
	}
	return true, nil
}
