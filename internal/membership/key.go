package membership

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"time"

	"k8s.io/utils/clock"
)

// SetKey rotates the gossip key: it installs key, encrypts with it from now
// on, and keeps the previous keys for decryption only, for Config.KeyGrace,
// before removing them. Calling it with the current key is a no-op.
//
// Members that have not switched yet cannot decrypt what this member sends,
// whatever it keeps, so a rolling SetKey partitions the cluster for as long
// as the speakers disagree on the primary key. To rotate without that, use
// SetKeys in three cluster-wide steps: SetKeys(old, new), then
// SetKeys(new, old), then SetKeys(new), each once every speaker has applied
// the previous one.
func (l *List) SetKey(key []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	key = bytes.Clone(key)
	l.keyMu.Lock()
	defer l.keyMu.Unlock()
	if bytes.Equal(l.keyring.GetPrimaryKey(), key) {
		return nil
	}
	if err := l.keyring.AddKey(key); err != nil {
		return fmt.Errorf("membership: install key: %w", err)
	}
	if err := l.keyring.UseKey(key); err != nil {
		return fmt.Errorf("membership: use key: %w", err)
	}
	l.pending = l.grace
	l.pendingGen++
	l.poke()
	l.log.Info("gossip key rotated; previous keys kept for decryption", "grace", l.grace)
	return nil
}

// SetKeys makes the keyring exactly primary (used to encrypt) and others
// (accepted for decryption), at once, and cancels any removal SetKey
// scheduled.
func (l *List) SetKeys(primary []byte, others ...[]byte) error {
	want := [][]byte{bytes.Clone(primary)}
	for _, k := range others {
		want = append(want, bytes.Clone(k))
	}
	var errs []error
	for i, k := range want {
		if err := checkKey(k); err != nil {
			errs = append(errs, fmt.Errorf("key %d: %w", i, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	l.keyMu.Lock()
	defer l.keyMu.Unlock()
	l.pending = -1
	l.pendingGen++
	l.poke()
	if err := l.installKeysLocked(want); err != nil {
		return err
	}
	l.log.Info("gossip keys set", "keys", len(l.keyring.GetKeys()))
	return nil
}

// installKeysLocked makes the keyring exactly want, want[0] primary.
//
// memberlist's Keyring.RemoveKey shifts later keys down in the backing array
// that GetKeys has handed to readers (decryption runs concurrently), so a key
// is only ever removed when it is last, which writes nothing. UseKey builds a
// fresh array; using the wanted keys in reverse order moves them to the
// front, leaving the unwanted ones at the end. Callers hold keyMu.
func (l *List) installKeysLocked(want [][]byte) error {
	for _, k := range want {
		if err := l.keyring.AddKey(k); err != nil {
			return fmt.Errorf("membership: install key: %w", err)
		}
	}
	for i := len(want) - 1; i >= 0; i-- {
		if err := l.keyring.UseKey(want[i]); err != nil {
			return fmt.Errorf("membership: use key: %w", err)
		}
	}
	for {
		keys := l.keyring.GetKeys()
		last := keys[len(keys)-1]
		if containsKey(want, last) {
			return nil
		}
		if err := l.keyring.RemoveKey(last); err != nil {
			return fmt.Errorf("membership: remove key: %w", err)
		}
	}
}

func containsKey(keys [][]byte, k []byte) bool {
	for _, x := range keys {
		if bytes.Equal(x, k) {
			return true
		}
	}
	return false
}

// poke wakes keyLoop; callers hold keyMu.
func (l *List) poke() {
	select {
	case l.keyPoke <- struct{}{}:
	default:
	}
}

// keyLoop removes the keys SetKey retired once their grace period is over.
// It is owned by the List and stops when Close cancels ctx.
func (l *List) keyLoop(ctx context.Context) {
	defer close(l.done)
	var (
		timer clock.Timer
		fire  <-chan time.Time
		gen   uint64
	)
	stop := func() {
		if timer != nil {
			timer.Stop()
			timer, fire = nil, nil
		}
	}
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.keyPoke:
			stop()
			l.keyMu.Lock()
			d := l.pending
			gen = l.pendingGen
			l.keyMu.Unlock()
			if d >= 0 {
				timer = l.clock.NewTimer(d)
				fire = timer.C()
			}
		case <-fire:
			timer, fire = nil, nil
			l.keyMu.Lock()
			if l.pendingGen == gen && l.pending >= 0 {
				l.pending = -1
				primary := l.keyring.GetPrimaryKey()
				if err := l.installKeysLocked([][]byte{primary}); err != nil {
					l.log.Error(err, "removing retired gossip keys")
				} else {
					l.log.Info("retired gossip keys removed")
				}
			}
			l.keyMu.Unlock()
		}
	}
}
