package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"

	"github.com/fieldsync/fieldsync/models"
)

// faults walks a body that failed to decode into a value of type t and
// names every field at fault, with its full path ("mutations[3].seq"):
// encoding/json stops at the first and drops array indexes. Objects and
// arrays of request types are walked; anything else is decoded on its own.
// A struct field may carry `range:"MIN,MAX"` to say which integers it
// takes when one is out of range.
func faults(path string, raw json.RawMessage, t reflect.Type, rng string) []models.FieldError {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	raw = bytes.TrimSpace(raw)
	if bytes.Equal(raw, []byte("null")) {
		return nil
	}
	custom := reflect.PointerTo(t).Implements(reflect.TypeFor[json.Unmarshaler]())
	switch {
	case !custom && t.Kind() == reflect.Struct && len(raw) > 0 && raw[0] == '{':
		return structFaults(path, raw, t)
	case !custom && t.Kind() == reflect.Slice && t.Elem().Kind() != reflect.Uint8 && len(raw) > 0 && raw[0] == '[':
		var elems []json.RawMessage
		if err := json.Unmarshal(raw, &elems); err != nil {
			return []models.FieldError{leafFault(path, err, rng)}
		}
		var out []models.FieldError
		for i, e := range elems {
			out = append(out, faults(fmt.Sprintf("%s[%d]", path, i), e, t.Elem(), "")...)
		}
		return out
	}
	if err := json.Unmarshal(raw, reflect.New(t).Interface()); err != nil {
		return []models.FieldError{leafFault(path, err, rng)}
	}
	return nil
}

// structFaults walks an object's members in the order they were sent.
func structFaults(path string, raw json.RawMessage, t reflect.Type) []models.FieldError {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil { // {
		return []models.FieldError{leafFault(path, err, "")}
	}
	var out []models.FieldError
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return append(out, leafFault(path, err, ""))
		}
		key, _ := tok.(string)
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return append(out, leafFault(path, err, ""))
		}
		at := key
		if path != "" {
			at = path + "." + key
		}
		f, ok := jsonField(t, key)
		if !ok {
			out = append(out, models.FieldError{Field: at, Code: models.CodeUnknownField, Message: "is not a field of this request"})
			continue
		}
		out = append(out, faults(at, val, f.Type, f.Tag.Get("range"))...)
	}
	return out
}

// jsonField finds the struct field encoding/json would fill from key: the
// exact name first, then one that differs only in case.
func jsonField(t reflect.Type, key string) (reflect.StructField, bool) {
	var fold *reflect.StructField
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = f.Name
		}
		if name == key {
			return f, true
		}
		if fold == nil && strings.EqualFold(name, key) {
			fold = &f
		}
	}
	if fold != nil {
		return *fold, true
	}
	return reflect.StructField{}, false
}

// leafFault says what is wrong with one value.
func leafFault(path string, err error, rng string) models.FieldError {
	var (
		typ *json.UnmarshalTypeError
		me  *models.Error
	)
	msg := "is not valid JSON for this field"
	switch {
	case errors.As(err, &typ):
		msg = typeFault(typ, rng)
	case errors.As(err, &me):
		if len(me.Fields) > 0 {
			return me.Fields[0]
		}
		msg = me.Message
	}
	return models.FieldError{Field: path, Code: models.CodeInvalid, Message: msg}
}

// typeFault words a type mismatch. A number that does not fit says which
// numbers do, rather than "must be a number, not number 1e400".
func typeFault(typ *json.UnmarshalTypeError, rng string) string {
	got, isNumber := strings.CutPrefix(typ.Value, "number ")
	if !isNumber {
		return fmt.Sprintf("must be %s, not %s", jsonKind(typ.Type.Kind().String()), typ.Value)
	}
	if lo, hi, ok := strings.Cut(rng, ","); ok {
		return fmt.Sprintf("must be an integer between %s and %s, not %s", lo, hi, got)
	}
	switch k := typ.Type.Kind(); {
	case k >= reflect.Int && k <= reflect.Int64:
		bits := typ.Type.Bits()
		return fmt.Sprintf("must be an integer between %d and %d, not %s", int64(-1)<<(bits-1), int64(1)<<(bits-1)-1, got)
	case k >= reflect.Uint && k <= reflect.Uint64:
		return fmt.Sprintf("must be an integer between 0 and %s, not %s", strconv.FormatUint(math.MaxUint64>>(64-typ.Type.Bits()), 10), got)
	case k == reflect.Float32 || k == reflect.Float64:
		return fmt.Sprintf("must be a finite number of at most about 1.8e308, not %s", got)
	}
	return fmt.Sprintf("must be %s, not the number %s", jsonKind(typ.Type.Kind().String()), got)
}
