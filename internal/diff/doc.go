// Package diff compares the results of two revisions of an experiment
// repository (or two results folders) the way a reviewer reads a pull
// request: per experiment, which runs changed, appeared or went away, every
// metric on both sides with its absolute and relative change, and the runs
// whose status changed — a run that succeeded on the base and fails on the
// head first of all.
//
// Only verified results count. A run folder is a result when its envelope
// verifies with a trusted key, attests the folder's run ID and experiment
// and covers every file in it (the check `expsync verify` and the results
// READMEs make); anything else found under results/ is listed apart as
// unverified and never enters a comparison.
//
// Runs are matched by run ID first (the same run on both sides), then by
// their parameters (and repeat index): the same point of a sweep whose code,
// data or environment changed has a new run ID, and its result is a changed
// result, not an added and a removed one. When a side's experiment files
// can be planned, the side's runs are the runs it plans — results it holds
// of older code (kept in results/ after the code moved on) are "stale" and
// left out — and a planned run without a result yet is "pending".
// Without a plan (two bare results folders), every verified run counts, and
// of several runs of one point the one that finished last.
package diff
