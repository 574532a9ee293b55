package render

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"fmt"
	"strings"
)

// Label and annotation keys of everything render.Job creates. A label holds
// what selectors need (valid label values only); an annotation holds the
// exact values (the full hex run ID, the repository URL, the commit).
const (
	// LabelRunID is the run ID as a label value: RunIDLabelValue(id), the
	// full 256-bit ID in 52 lowercase base32 characters, so a selector finds
	// the Job (and its pods) of a run without any truncation ambiguity.
	LabelRunID = "expsync.dev/run-id"
	// LabelExperiment is the experiment's name (a DNS-1123 label).
	LabelExperiment = "expsync.dev/experiment"
	// LabelRepository is RepositoryHash(url), to list one repository's Jobs.
	LabelRepository = "expsync.dev/repository"
	// LabelManagedBy is app.kubernetes.io/managed-by: expsync.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// LabelKueueQueue names the Kueue LocalQueue (set when spec.queue is).
	LabelKueueQueue = "kueue.x-k8s.io/queue-name"

	// AnnotationRunID is the full hex run ID (the results folder's name).
	AnnotationRunID = "expsync.dev/run-id"
	// AnnotationRepository is the repository URL as configured.
	AnnotationRepository = "expsync.dev/repository"
	// AnnotationCommit is the commit the run was planned from.
	AnnotationCommit = "expsync.dev/commit"
	// AnnotationSpecPath and AnnotationSpecBlob are the experiment file's
	// repository path and Git blob ID.
	AnnotationSpecPath = "expsync.dev/spec-path"
	AnnotationSpecBlob = "expsync.dev/spec-blob"
	// AnnotationParams is the sweep point's params as JSON, for people.
	AnnotationParams = "expsync.dev/params"
	// AnnotationRepeat is the repeat index, when not 0.
	AnnotationRepeat = "expsync.dev/repeat"
	// AnnotationContract, on the pod template, is the run contract as JSON
	// (the pod reads it through a downward API volume).
	AnnotationContract = "expsync.dev/contract"

	// ManagedBy is the value of LabelManagedBy.
	ManagedBy = "expsync"
)

// maxNameLength is the longest Job name: the Job controller copies the name
// into the batch.kubernetes.io/job-name label of its pods, and label values
// are at most 63 characters.
const maxNameLength = 63

// jobNameIDChars is how many hex characters of the run ID a Job name
// carries: 64 bits, so two runs of one experiment never share a name in
// practice, and the same prefix as the run's results folder
// (results/<experiment>/<run-id>/), so people can match them by eye.
const jobNameIDChars = 16

// JobName returns the name of the Job of a run:
// "<experiment>-<first 16 hex chars of the ID>", with the experiment part
// shortened so the whole name fits in 63 characters. Deterministic: the same
// run always gets the same name, which is how a restarted controller finds
// the Job it created instead of creating a second one.
func JobName(experiment, runID string) (string, error) {
	if len(runID) < jobNameIDChars {
		return "", fmt.Errorf("run ID %q is shorter than %d characters", runID, jobNameIDChars)
	}
	idPart := strings.ToLower(runID[:jobNameIDChars])
	prefix := experiment
	if room := maxNameLength - 1 - jobNameIDChars; len(prefix) > room {
		prefix = prefix[:room]
	}
	// A cut name may end in "-" (or be empty for a name made only of
	// dashes); either way the joined name stays a DNS-1123 label.
	prefix = strings.TrimRight(prefix, "-")
	if prefix == "" {
		return "run-" + idPart, nil
	}
	return prefix + "-" + idPart, nil
}

// runIDEncoding is RFC 4648 base32 in lowercase without padding: label values
// allow [a-z0-9] and the alphabet a-z2-7 fits; 256 bits take 52 characters.
var runIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// RunIDLabelValue encodes a hex run ID (sha256, 64 hex characters) as a label
// value of 52 lowercase base32 characters. Run IDs are lowercase hex; an
// uppercase one is refused, since it would encode to the same label as its
// lowercase twin while the annotation kept the other spelling.
func RunIDLabelValue(runID string) (string, error) {
	raw, err := hex.DecodeString(runID)
	if err != nil || len(raw) != sha256.Size || hex.EncodeToString(raw) != runID {
		return "", fmt.Errorf("run ID %q is not 64 lowercase hex characters", runID)
	}
	return runIDEncoding.EncodeToString(raw), nil
}

// RunIDFromLabelValue is the inverse of RunIDLabelValue. It refuses values
// whose 4 unused trailing bits are not zero (encoding/base32 ignores them),
// so each ID has exactly one label value.
func RunIDFromLabelValue(value string) (string, error) {
	raw, err := runIDEncoding.DecodeString(value)
	if err != nil || len(raw) != sha256.Size || runIDEncoding.EncodeToString(raw) != value {
		return "", fmt.Errorf("label value %q is not an encoded run ID", value)
	}
	return hex.EncodeToString(raw), nil
}

// RepositoryHash is the label value naming a repository: the first 20 hex
// characters (80 bits) of the sha256 of its URL exactly as configured. The
// full URL is in the AnnotationRepository annotation.
func RepositoryHash(url string) string {
	sum := sha256.Sum256([]byte(url))
	return hex.EncodeToString(sum[:])[:20]
}
