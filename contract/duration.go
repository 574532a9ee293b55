package contract

import (
	"encoding/json"
	"fmt"
	"time"
)

// MarshalJSON writes the duration as a Go duration string ("30m0s").
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"30m\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	d.Duration = v
	return nil
}

// IsZero lets `omitzero` drop an unset duration.
func (d Duration) IsZero() bool { return d.Duration == 0 }
