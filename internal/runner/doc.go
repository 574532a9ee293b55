// Package runner executes one run contract (contract.Contract) as a local
// process group, in-process, with no new expsync process per run:
//
//  1. materialise a fresh work folder per attempt: the context tree from the
//     store (hard links to read-only objects for plain files, copies for
//     executables) and the inputs (repository files from the store, URLs
//     fetched over HTTP(S) with a size limit), every input checked against its
//     sha256 — a mismatch ends the run as InputMismatch before the command
//     starts, with a message naming the input and both digests;
//  2. run the command with a clean environment (PATH, HOME=work folder, TMPDIR,
//     LANG=C.UTF-8, EXPSYNC_RUN_ID) plus the declared variables; secret values
//     come from the operator's environment (EXPSYNC_SECRET_<NAME>_<KEY>) or a
//     secrets file and are redacted from the captured log;
//  3. enforce the per-attempt timeout on the whole process group (SIGTERM,
//     then SIGKILL after a grace period); Pdeathsig kills the direct child if
//     this process dies, and the executor's journal ends any leftover group;
//  4. capture stdout+stderr into one size-limited log; hash every declared
//     output (symlinks recorded as data, never followed); put the log and
//     outputs into the store; read the metrics file;
//  5. retry with exponential backoff after infrastructure failures and the
//     exit codes the contract declares transient.
//
// A failed run is a result too. Run returns an error only when no result can
// be recorded at all (for example a contract that is invalid).
//
// Limits: usage is measured (CPU seconds from wait4's rusage of
// the direct child, which includes the descendants it waited for; peak RSS
// as memory.go explains), not
// enforced: RLIMIT_AS would break runtimes that reserve address space, and
// cgroups need privileges local mode does not assume. Every process of a
// run ends with it, also one that left the process group (setsid): in a
// cgroup of its own where the machine allows (cgroup.go), else below the
// run's reaper, a child subreaper (reaper.go); after a crash of expsync the
// executor's recovery finds what is left by EXPSYNC_RUN_ID.
//
// RunCached adds the run cache: it takes the store's per-run lock, returns a
// cached result when there is one, and stores the new result otherwise, so
// two processes planning one run execute it once.
package runner
