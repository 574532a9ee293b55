// Package reproduce executes a committed run again from its attestation
// alone and compares what it produces with what was attested: the check
// behind `expsync reproduce` and serve's audit sampling.
//
// The steps, in the order Reproduce runs them:
//
//  1. Load (material.go): verify the run folder, signature first. A folder
//     that does not verify is never executed.
//  2. Rebuild (rebuild.go): the run contract from the attested material
//     only — the identity in run.json, which hashes to the run ID, and the
//     context tree and inputs the signed statement names — never from the
//     experiment files as they are now. The run ID recomputed from the
//     rebuilt contract must be the attested one, so a reproduction executes
//     exactly the attested recipe.
//  3. Check (check.go): say why a reproduction cannot work before spending
//     compute: a context tree the repository lacks, an input gone from its
//     URL and not in the store (or serving other bytes), a GPU, secret,
//     image or amount of memory or disk this machine does not have.
//  4. Execute: one fresh execution through the runner, never the run cache
//     (and never recorded in it: the attested result stays the run's).
//  5. Compare (compare.go): the exit status, every output and every metric,
//     judged by the tolerances the attested experiment file declared
//     (tolerances.go).
//  6. Record (record.go): a signed reproduction statement in the run
//     folder's reproductions/, on request.
package reproduce
