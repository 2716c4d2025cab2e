package bench

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// TestSyncPeersStopWhenCancelled checks that both SYNC_FLUSH peers end
// with the context's error when it ends mid-measurement, every writer
// goroutine let out (the race detector and the test's end would show one
// stuck on a channel).
func TestSyncPeersStopWhenCancelled(t *testing.T) {
	peers := map[string]func(ctx context.Context, path string) (float64, error){
		"goroutines": func(ctx context.Context, path string) (float64, error) {
			return goroutineGroupCommit(ctx, path, 8, 100, time.Hour)
		},
		"pebble": func(ctx context.Context, path string) (float64, error) {
			return pebbleSyncWrites(ctx, path, 8, 100, time.Hour)
		},
	}
	for name, run := range peers {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			stop := time.AfterFunc(200*time.Millisecond, cancel)
			defer stop.Stop()
			done := make(chan error, 1)
			go func() {
				_, err := run(ctx, filepath.Join(t.TempDir(), name))
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("err = %v, want context.Canceled", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("still measuring 30 s after its context ended")
			}
		})
	}
}
