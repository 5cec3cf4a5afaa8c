package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/fieldsync/fieldsync/models"
)

// decodeJSON reads the request body into dst strictly: JSON content type
// (or none), one value, no unknown fields, no trailing data, within the
// body limit. Each failure names what is wrong.
func decodeJSON(c echo.Context, dst any) error {
	return decodeBody(c, dst, false)
}

// decodeFetchJSON is decodeJSON that also takes text/plain: fetch() labels
// a string body so, and WatermelonDB's documented pushChanges posts
// JSON.stringify(changes) with no Content-Type of its own.
func decodeFetchJSON(c echo.Context, dst any) error {
	return decodeBody(c, dst, true)
}

func decodeBody(c echo.Context, dst any, textPlain bool) error {
	raw, err := readBody(c, textPlain)
	if err != nil {
		return err
	}
	return decodeRaw(raw, dst)
}

// readBody checks that the body is JSON by its Content-Type and reads it.
func readBody(c echo.Context, textPlain bool) ([]byte, error) {
	req := c.Request()
	if ct := req.Header.Get(echo.HeaderContentType); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		isJSON := mt == "application/json" || strings.HasSuffix(mt, "+json") || (textPlain && mt == "text/plain")
		if err != nil || !isJSON {
			return nil, models.Errorf(models.CodeUnsupportedMedia, "Content-Type must be application/json, not %q", ct)
		}
	}
	raw, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, jsonError(err)
	}
	return raw, nil
}

// decodeRaw decodes a body read by readBody into dst: exactly one JSON
// value, no member dst does not know, no NUL in a string.
func decodeRaw(raw []byte, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		var (
			typ *json.UnmarshalTypeError
			me  *models.Error
		)
		inField := errors.As(err, &typ) && typ.Field != "" || errors.As(err, &me) || strings.HasPrefix(err.Error(), "json: unknown field ")
		if inField {
			// The decoder stops at the first fault in a field: walk the
			// body again so the answer names each one.
			if fields := faults("", raw, reflect.TypeOf(dst), ""); len(fields) > 0 {
				return models.Invalid(fields)
			}
		}
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return jsonError(err)
		}
		return models.Errorf(models.CodeMalformed, "body must hold exactly one JSON value")
	}
	return refuseNUL(reflect.ValueOf(dst), "")
}

// refuseNUL walks a decoded body and refuses any string in it that holds
// NUL (U+0000), naming its field by JSON path ("name", "targets.<key>",
// "mutations[2].entity"). PostgreSQL cannot store NUL in text, so such a
// string would fail deep in the store as a 500; SQLite would store it and
// hand it back to clients that do not expect it. Raw JSON values
// (json.RawMessage: the fields of a sync mutation) are left to whoever
// parses them: the sync engine refuses NUL per field and per mutation.
func refuseNUL(v reflect.Value, path string) error {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return refuseNUL(v.Elem(), path)
		}
	case reflect.String:
		if strings.ContainsRune(v.String(), 0) {
			return models.FieldInvalid(path, "must not contain NUL")
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if err := refuseNUL(v.Field(i), joinPath(path, name)); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return nil // json.RawMessage and []byte
		}
		for i := range v.Len() {
			if err := refuseNUL(v.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			k := fmt.Sprint(iter.Key().Interface())
			if strings.ContainsRune(k, 0) {
				return models.FieldInvalid(path, "must not contain NUL")
			}
			if err := refuseNUL(iter.Value(), joinPath(path, k)); err != nil {
				return err
			}
		}
	}
	return nil
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func jsonError(err error) error {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
		mbe *http.MaxBytesError
	)
	switch {
	case errors.As(err, &mbe):
		return models.Errorf(models.CodeTooLarge, "request body is larger than %d bytes", mbe.Limit)
	case errors.Is(err, io.EOF):
		return models.Errorf(models.CodeMalformed, "request body is empty; a JSON object is required")
	case errors.As(err, &syn):
		return models.Errorf(models.CodeMalformed, "malformed JSON at byte %d: %v", syn.Offset, syn)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return models.Errorf(models.CodeMalformed, "malformed JSON: body ends early")
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return models.Errorf(models.CodeMalformed, "body must be %s", jsonKind(typ.Type.Kind().String()))
		}
		return models.FieldInvalid(field, "must be %s, not %s", jsonKind(typ.Type.Kind().String()), typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return models.UnknownField(field)
	}
	var me *models.Error
	if errors.As(err, &me) {
		return me
	}
	return models.Errorf(models.CodeMalformed, "malformed JSON: %s", err)
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "struct", "map":
		return "an object"
	case "slice", "array":
		return "an array"
	case "int", "int64", "int32", "uint", "uint64", "float64", "float32":
		return "a number"
	}
	return "a " + k
}

// parseUUID parses a required UUID named field.
func parseUUID(field, s string) (uuid.UUID, error) {
	id, err := uuid.Parse(s)
	if err != nil || len(s) != 36 {
		return uuid.Nil, models.FieldInvalid(field, "must be a UUID")
	}
	return id, nil
}

// jsonEncode writes v without HTML escaping: names such as "Smith & Sons"
// stay readable on the wire.
func jsonEncode(w io.Writer, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encode json: %w", err)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// writeJSON answers status with v as JSON.
func writeJSON(c echo.Context, status int, v any) error {
	c.Response().Header().Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	c.Response().WriteHeader(status)
	return jsonEncode(c.Response(), v)
}
