package kube

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/expsync/expsync/contract"
)

// FuzzCollect feeds collect what a hostile pod controls — the run
// container's termination message, the result it points to and its exit
// code — next to an honest prepare. Whatever the bytes: no panic, the
// exit code the kubelet saw is the result's, and a run counted as
// succeeded exited 0 with every output it keeps rehashed in the
// controller's store.
func FuzzCollect(f *testing.F) {
	f.Add(`{"runID":"`+testRunID+`","resultSHA256":"`+"0000000000000000000000000000000000000000000000000000000000000000"+`"}`,
		[]byte(`{"runID":"`+testRunID+`","status":"Succeeded","exitCode":0,"outputs":[{"path":"out/pi.json","mode":"100644","sha256":"x","size":1}]}`), int32(0), false)
	f.Add(`not json`, []byte(`{}`), int32(3), true)
	f.Add(``, []byte(`{"runID":"`+testRunID+`","status":"Failed","exitCode":0}`), int32(0), true)
	f.Fuzz(func(t *testing.T, message string, result []byte, code int32, pointAtResult bool) {
		fx := newCollectFixture(t)
		fx.reported = nil
		fx.runContainer(code, "", testImage)
		if code != 0 {
			fx.failJob("PodFailurePolicy")
		}
		if pointAtResult {
			sha := fx.put(result)
			message = `{"runID":"` + testRunID + `","resultSHA256":"` + sha + `"}`
		}
		fx.pod.Status.ContainerStatuses[0].State.Terminated.Message = message
		res := fx.collect()
		if res.ExitCode != int(code) {
			t.Fatalf("exit code %d, the kubelet saw %d", res.ExitCode, code)
		}
		if res.Status == contract.Succeeded && code != 0 {
			t.Fatalf("succeeded with exit code %d", code)
		}
		for _, o := range res.Outputs {
			rc, err := fx.storage.Store().Open(context.Background(), o.SHA256)
			if err != nil {
				t.Fatalf("kept output %s is not in the store: %v", o.Path, err)
			}
			h := sha256.New()
			buf := make([]byte, 1<<16)
			for {
				n, err := rc.Read(buf)
				h.Write(buf[:n])
				if err != nil {
					break
				}
			}
			rc.Close()
			if hex.EncodeToString(h.Sum(nil)) != o.SHA256 {
				t.Fatalf("kept output %s does not hash to its digest", o.Path)
			}
		}
	})
}
