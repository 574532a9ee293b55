package contract

// The sizes of what expsync records for a run, in one place. A run's folder
// is written by one expsync (the runner, then the signer) and read back by
// every later reconcile, by `expsync verify` and by the summaries. Each
// writer's limit is strictly below each reader's (TestWritersStayBelowReaders),
// so a folder expsync wrote is never too large for expsync to read: were it
// so, the reconciler would take the genuine folder for a forged one and
// commit it again at every poll.
//
// A run over a writer's limit is Failed, with a message naming the limit:
//
//   - more than MaxOutputFiles output files (a repository can lower it with
//     limits.maxOutputFiles in expsync.yaml, never raise it), or output
//     paths longer than MaxOutputPathBytes each or MaxOutputNameBytes in all;
//   - a run.json over MaxRecordBytes, a metrics.json over MaxMetricsBytes or
//     a signed envelope over MaxEnvelopeBytes: the run's record is then kept
//     without its list of outputs, so that it can be signed and committed.
//
// Messages recorded in run.json (why a run failed, why its metrics are
// missing) are cut to MaxMessageBytes.
const (
	// MaxOutputFiles bounds the files (and symlinks) a run's declared
	// outputs may hold.
	MaxOutputFiles = 10_000
	// MaxOutputPathBytes bounds one output's path (below outputs/ in the
	// run folder), so that results/<experiment>/<run ID>/outputs/<path>
	// stays within what a checkout can create (4096 bytes, with room for
	// a results folder of MaxResultsFolderBytes and an experiment name).
	MaxOutputPathBytes = 3584
	// MaxResultsFolderBytes bounds the results folder expsync.yaml names.
	MaxResultsFolderBytes = 256
	// MaxOutputNameBytes bounds the sum of a run's output paths: they are
	// listed in run.json and in the statement's subjects.
	MaxOutputNameBytes = 1 << 20
	// MaxMessageBytes bounds each message recorded in run.json.
	MaxMessageBytes = 4 << 10

	// MaxRecordBytes bounds a run.json expsync writes.
	MaxRecordBytes = 8 << 20
	// MaxMetricsBytes bounds a metrics.json expsync writes (the run's
	// metrics file, itself at most 1 MiB, re-encoded with indentation).
	MaxMetricsBytes = 2 << 20
	// MaxEnvelopeBytes bounds a provenance.intoto.jsonl expsync writes.
	MaxEnvelopeBytes = 16 << 20

	// ReadRecordBytes, ReadMetricsBytes and ReadEnvelopeBytes are what
	// every reader accepts (the reconciler, the summaries, `expsync
	// verify`): twice the writers' limits, so that a folder written by an
	// expsync with other limits within a factor of two still reads.
	ReadRecordBytes   = 2 * MaxRecordBytes
	ReadMetricsBytes  = 2 * MaxMetricsBytes
	ReadEnvelopeBytes = 2 * MaxEnvelopeBytes
)

// Truncate cuts a message recorded in a result to MaxMessageBytes, at a
// UTF-8 boundary, saying how much was cut.
func Truncate(msg string) string {
	if len(msg) <= MaxMessageBytes {
		return msg
	}
	const tail = " … (message cut at 4 KiB)"
	cut := MaxMessageBytes - len(tail)
	for cut > 0 && msg[cut]&0xc0 == 0x80 {
		cut-- // do not split a UTF-8 sequence
	}
	return msg[:cut] + tail
}
