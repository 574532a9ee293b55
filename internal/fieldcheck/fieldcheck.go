// Package fieldcheck proves hand-written encoders and copies complete. It
// fills every field of a value by reflection and changes the fields one at
// a time, so a field added to a type and left out of a function that must
// see it (a canonical form, a deep copy) fails a test the day it is added
// instead of silently meaning nothing.
//
// Only exported fields are filled (an unexported one is the type's own
// business); time.Time is a leaf. Interfaces are filled with strings.
package fieldcheck

import (
	"bytes"
	"fmt"
	"reflect"
	"time"
)

// Fill sets every field reachable from ptr (a pointer) to a value derived
// from seed: strings, numbers and booleans that differ between seeds 1 and
// 2, slices and maps of one element, pointers allocated.
func Fill(ptr any, seed int) {
	fill(reflect.ValueOf(ptr).Elem(), seed)
}

// Filled returns a T filled with seed (see Fill).
func Filled[T any](seed int) T {
	var v T
	Fill(&v, seed)
	return v
}

var timeType = reflect.TypeOf(time.Time{})

func fill(v reflect.Value, seed int) {
	switch {
	case v.Type() == timeType:
		v.Set(reflect.ValueOf(time.Unix(int64(1_700_000_000+seed), 0).UTC()))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", seed))
	case reflect.Bool:
		v.SetBool(seed%2 == 1)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(seed))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(seed))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(seed) + 0.5)
	case reflect.Interface:
		v.Set(reflect.ValueOf(fmt.Sprintf("i%d", seed)))
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), seed)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fill(s.Index(0), seed)
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMapWithSize(v.Type(), 1)
		k := reflect.New(v.Type().Key()).Elem()
		fill(k, seed)
		e := reflect.New(v.Type().Elem()).Elem()
		fill(e, seed)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), seed)
			}
		}
	default:
		panic(fmt.Sprintf("fieldcheck: cannot fill a %s", v.Type()))
	}
}

// Change changes, in place, the n-th leaf (counting from 0) of the value
// ptr points to — a field, a slice element's field, a map's key or value —
// to the value seed 2 gives it. The value must have been filled with seed 1.
// It returns the leaf's path ("Env[0].SecretRef.Name", "Params[key]"), or ""
// when the value has fewer leaves.
func Change(ptr any, n int) string {
	w := walker{target: n}
	w.walk(reflect.ValueOf(ptr).Elem(), "")
	return w.path
}

// Leaves returns the number of leaves of a T filled with seed 1.
func Leaves[T any]() int {
	v := Filled[T](1)
	w := walker{target: -1}
	w.walk(reflect.ValueOf(&v).Elem(), "")
	return w.n
}

type walker struct {
	target, n int
	path      string
}

// leaf counts one leaf and reports whether it is the one to change.
func (w *walker) leaf(path string) bool {
	hit := w.n == w.target
	if hit {
		w.path = path
	}
	w.n++
	return hit
}

func (w *walker) walk(v reflect.Value, path string) {
	if v.Type() == timeType {
		if w.leaf(path) {
			fill(v, 2)
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		w.walk(v.Elem(), path)
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			w.walk(v.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			kp := fmt.Sprintf("%s[%v]", path, k)
			if w.leaf(kp + " (key)") {
				nk := reflect.New(k.Type()).Elem()
				fill(nk, 2)
				e := v.MapIndex(k)
				v.SetMapIndex(k, reflect.Value{})
				v.SetMapIndex(nk, e)
				return
			}
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(v.MapIndex(k))
			before := w.path
			w.walk(e, kp)
			if w.path != before {
				v.SetMapIndex(k, e)
			}
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			p := f.Name
			if path != "" {
				p = path + "." + f.Name
			}
			w.walk(v.Field(i), p)
		}
	default:
		if w.leaf(path) {
			fill(v, 2)
		}
	}
}

// Unused returns the leaves of T that out does not see: changing one
// alone leaves out's bytes as they were. A canonical form, an encoder or a
// digest of T must see every leaf.
func Unused[T any](out func(T) []byte) []string {
	base := out(Filled[T](1))
	var unused []string
	for n := 0; ; n++ {
		v := Filled[T](1)
		path := Change(&v, n)
		if path == "" {
			return unused
		}
		if bytes.Equal(out(v), base) {
			unused = append(unused, path)
		}
	}
}

// Shared returns the leaves of T that a copy made by cp shares with its
// original: changing one in the copy changes the original. A deep copy
// shares none.
func Shared[T any](cp func(T) T) []string {
	var shared []string
	for n := 0; ; n++ {
		orig := Filled[T](1)
		c := cp(orig)
		path := Change(&c, n)
		if path == "" {
			return shared
		}
		if !reflect.DeepEqual(orig, Filled[T](1)) {
			shared = append(shared, path)
		}
	}
}
