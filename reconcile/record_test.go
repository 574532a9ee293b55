package reconcile

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/render"
)

// TestRecordCarriesQueueAndSelfReported: run.json says where a run waited
// for quota and how long, and names what only the code under test vouches
// for; a run with neither says nothing of them.
func TestRecordCarriesQueueAndSelfReported(t *testing.T) {
	r := &Reconciler{ExecutorName: "kubernetes"}
	run := render.Run{ID: strings.Repeat("a", 64), Experiment: "e"}
	queued := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	res := &contract.Result{RunID: run.ID, Status: contract.Succeeded, QueuedAt: queued,
		Queue: "research", AdmittedAt: queued.Add(1500 * time.Millisecond),
		SelfReported: []string{contract.SelfReportedLog, contract.SelfReportedMetrics, contract.SelfReportedUsage}}
	rec := r.record(Target{}, run, res)
	data, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"queue":{"name":"research","admittedAt":"2026-12-07T10:00:01.5Z","waitSeconds":1.5}`,
		`"selfReported":["log","metrics","usage"]`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("run.json lacks %s:\n%s", want, data)
		}
	}
	plain := r.record(Target{}, run, &contract.Result{RunID: run.ID, Status: contract.Succeeded, QueuedAt: queued})
	if data, _ := json.Marshal(plain); strings.Contains(string(data), `"queue"`) || strings.Contains(string(data), `"selfReported":[`) {
		t.Errorf("a run that waited in no queue and reported nothing itself: %s", data)
	}
}
