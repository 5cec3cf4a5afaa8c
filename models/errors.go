package models

import (
	"errors"
	"fmt"
)

// Error codes are stable: clients switch on them, so a code is never renamed.
const (
	CodeInvalid           = "invalid"            // a field or parameter failed validation
	CodeMalformed         = "malformed"          // the body is not the JSON the endpoint expects
	CodeNotFound          = "not_found"          // absent, or outside the caller's scope
	CodeConflict          = "conflict"           // a uniqueness rule or concurrent change
	CodeUnauthorized      = "unauthorized"       // no valid credentials
	CodeForbidden         = "forbidden"          // authenticated, but the role may not do this
	CodeRateLimited       = "rate_limited"       // too many attempts; see Retry-After
	CodeTooLarge          = "too_large"          // body or batch over its limit
	CodeUnsupportedSchema = "unsupported_schema" // schema_version the server does not speak
	CodeUnavailable       = "unavailable"        // transient: the database is unreachable
	CodeInternal          = "internal"           // a bug; logged with the request id
	CodeUnsupportedMedia  = "unsupported_media"  // Content-Type is not JSON
	CodeMethodNotAllowed  = "method_not_allowed" // route exists, method does not

	// Why the sync engine rejected one mutation of a push. They reach the
	// client in that mutation's result, so they are declared here with
	// the others: one list of codes, each with an HTTP status in api.
	CodeInvalidValue      = "invalid_value"          // a field's value is malformed or breaks a rule
	CodeUnknownField      = "unknown_field"          // the entity or request has no such field
	CodeServerOwned       = "server_owned_field"     // the server sets this field; a client may not
	CodeReadOnly          = "read_only_entity"       // the server computes this entity; clients only read it
	CodeMissingRequired   = "missing_required_field" // a field required on create is absent
	CodeInvalidTransition = "invalid_transition"     // the status cannot move that way
	CodeLocked            = "locked"                 // the record can no longer change
	CodeLimitReached      = "limit_reached"          // a quota is used up until its period ends
	CodeSeqReused         = "seq_reused"             // the device's seq counter went back: renumber past last_seq
	CodeUnknownEntity     = "unknown_entity"         // the server syncs no such entity (a newer app)
	CodeDependencyRefused = "dependency_rejected"    // the record refers to a record of the same push that was refused
)

// FieldError names one field at fault and why.
type FieldError struct {
	Field   string `json:"field"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error is the one error type that crosses layers. Code is stable and
// machine-readable; Message is for people. Fields lists the fields at fault,
// when there are any.
type Error struct {
	Code    string
	Message string
	Fields  []FieldError
	// RetryAfter is set on rate-limit errors: how long the caller must wait.
	RetryAfterSeconds int
}

func (e *Error) Error() string {
	if len(e.Fields) > 0 {
		return fmt.Sprintf("%s: %s (%s: %s)", e.Code, e.Message, e.Fields[0].Field, e.Fields[0].Message)
	}
	return e.Code + ": " + e.Message
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldInvalid returns an invalid-input error naming one field.
func FieldInvalid(field, format string, args ...any) *Error {
	msg := fmt.Sprintf(format, args...)
	return &Error{
		Code:    CodeInvalid,
		Message: field + ": " + msg,
		Fields:  []FieldError{{Field: field, Code: CodeInvalid, Message: msg}},
	}
}

// FieldErr returns an error of code whose message is msg, naming one field
// at fault and why (fieldMsg).
func FieldErr(code, msg, field, fieldMsg string) *Error {
	return &Error{Code: code, Message: msg, Fields: []FieldError{{Field: field, Code: code, Message: fieldMsg}}}
}

// Invalid returns an invalid-input error naming every field at fault; its
// message names the first. fields must not be empty.
func Invalid(fields []FieldError) *Error {
	return &Error{Code: CodeInvalid, Message: fields[0].Field + ": " + fields[0].Message, Fields: fields}
}

// UnknownField returns an invalid-input error for a request that names a
// field its endpoint does not have.
func UnknownField(field string) *Error {
	return &Error{
		Code:    CodeInvalid,
		Message: fmt.Sprintf("unknown field %q", field),
		Fields:  []FieldError{{Field: field, Code: CodeUnknownField, Message: "is not a field of this request"}},
	}
}

// ErrorCode returns the code of err if it is (or wraps) an *Error, and
// CodeInternal otherwise.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// ErrNotFound is returned for anything absent or outside the caller's scope;
// the two are deliberately indistinguishable.
var ErrNotFound = &Error{Code: CodeNotFound, Message: "not found"}

// ErrUnavailable marks a transient storage failure: the caller may retry.
var ErrUnavailable = &Error{Code: CodeUnavailable, Message: "the database is unavailable; retry later"}

// Codes are every code above, for whoever must bound a set by them (metric
// labels). api's TestEveryCodeHasAStatus keeps the list equal to the
// constants declared here.
var Codes = []string{
	CodeInvalid, CodeMalformed, CodeNotFound, CodeConflict, CodeUnauthorized,
	CodeForbidden, CodeRateLimited, CodeTooLarge, CodeUnsupportedSchema,
	CodeUnavailable, CodeInternal, CodeUnsupportedMedia, CodeMethodNotAllowed,
	CodeInvalidValue, CodeUnknownField, CodeServerOwned, CodeReadOnly,
	CodeMissingRequired, CodeInvalidTransition, CodeLocked, CodeLimitReached,
	CodeSeqReused, CodeUnknownEntity, CodeDependencyRefused,
}
