// Package attest builds, signs and verifies the provenance of expsync runs in
// the formats cosign and the in-toto tools read: an in-toto Statement v1 with
// a SLSA Provenance v1 predicate, in a DSSE envelope
// (application/vnd.in-toto+json) signed through sigstore/sigstore.
//
// Verification checks the signatures before it reads the payload, then the
// payload and predicate types, the builder ID, and — for a results folder —
// that the invocation ID is the folder's run ID and that every subject
// matches its file. VerifyFolder is the check the planner uses to decide that
// a run committed to a branch is done.
//
// This package is part of expsync's supported Go API (see "Go packages" in
// the README); the packages under internal/ are not.
package attest
