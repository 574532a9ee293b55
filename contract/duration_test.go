package contract

import (
	"encoding/json"
	"testing"
	"time"
)

func TestDurationJSONRoundTrip(t *testing.T) {
	in := Limits{Timeout: Duration{90 * time.Minute}, CPU: "1"}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"timeout":"1h30m0s","cpu":"1"}`; string(b) != want {
		t.Errorf("Marshal = %s, want %s", b, want)
	}
	var out Limits
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out != in {
		t.Errorf("round trip = %+v, want %+v", out, in)
	}
	if err := json.Unmarshal([]byte(`{"timeout":5}`), &out); err == nil {
		t.Error("a number was accepted as a duration")
	}
}
