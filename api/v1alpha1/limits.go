package v1alpha1

import (
	"reflect"
	"time"

	"github.com/expsync/expsync/contract"
)

// BuiltinLimits are the limits when neither the operator nor the repository
// lowers them. They are the ceiling for everyone.
func BuiltinLimits() Limits {
	return Limits{
		MaxFileBytes:         1 << 20,
		MaxTotalBytes:        32 << 20,
		MaxDocuments:         100,
		MaxYAMLNodes:         100_000,
		MaxAliases:           100,
		MaxFiles:             1_000,
		MaxRunsPerExperiment: 10_000,
		MaxRuns:              100_000,
		MaxRepeat:            100,
		MaxTimeout:           Duration{7 * 24 * time.Hour},
		MaxRetries:           10,
		MaxGPUs:              16,
		MaxOutputBytes:       10 << 30,
		MaxLogBytes:          64 << 20,
		MaxOutputFiles:       contract.MaxOutputFiles,
	}
}

// Lower returns l with every field that other sets (non-zero) and that is
// tighter than l's replaced by other's. A limit can only go down.
func (l Limits) Lower(other Limits) Limits {
	lv := reflect.ValueOf(&l).Elem()
	ov := reflect.ValueOf(other)
	for i := 0; i < lv.NumField(); i++ {
		a, b := limitValue(lv.Field(i)), limitValue(ov.Field(i))
		if b > 0 && (a <= 0 || b < a) {
			lv.Field(i).Set(ov.Field(i))
		}
	}
	return l
}

// exceeded lists the fields of other that are above l (a raise attempt), by
// their YAML name, with both values.
func (l Limits) exceeded(other Limits) []limitRaise {
	var out []limitRaise
	lv, ov := reflect.ValueOf(l), reflect.ValueOf(other)
	t := lv.Type()
	for i := 0; i < lv.NumField(); i++ {
		a, b := limitValue(lv.Field(i)), limitValue(ov.Field(i))
		if a > 0 && b > a {
			out = append(out, limitRaise{field: yamlName(t.Field(i)), asked: ov.Field(i).Interface(), allowed: lv.Field(i).Interface()})
		}
	}
	return out
}

type limitRaise struct {
	field          string
	asked, allowed any
}

func limitValue(v reflect.Value) int64 {
	if d, ok := v.Interface().(Duration); ok {
		return int64(d.Duration)
	}
	return v.Int()
}
