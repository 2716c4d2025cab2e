// Package bench holds the load generators and raw-disk baselines behind
// `halfback bench`.
//
// A benchmark figure alone says little on a machine you do not know, so
// every run measures the disk's own limit for the same workload, in the
// same directory, and reports the store's figure as a ratio of it.
//
// # Store append
//
// [RunStore] measures, in fresh subdirectories of one directory:
//
//  1. perfect group commit: one write of Writers×Size bytes and one
//     fdatasync, repeated, into a file zero-filled beforehand (as the
//     store's commit-log segments are) and into one that grows; the
//     better of the two is the bound for SYNC_FLUSH;
//  2. raw sequential bandwidth: 1 MiB writes and a final fdatasync; the
//     bound for ASYNC_FLUSH;
//  3. the store: Writers goroutines each appending Size-byte messages
//     through [store.Store.Append], with every append's latency recorded.
//
// The bounds count bodies (Writers×Size bytes per fsync), the store
// writes whole records (a 1 KiB bench message is a 1,167-byte record):
// the ratios are a little lower than for the same bytes, and much lower
// for small bodies.
//
// # Usage
//
//	res, err := bench.RunStore(ctx, bench.StoreOptions{
//		Dir:      "/var/lib/halfback-bench",
//		Flush:    store.SyncFlush,
//		Writers:  64,
//		Size:     1024,
//		Duration: 10 * time.Second,
//	})
//	fmt.Printf("%.0f msgs/s, %.0f%% of the disk's limit\n", res.MsgsPerSec, 100*res.Ratio)
package bench
