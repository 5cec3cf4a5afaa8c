package models_test

import (
	"reflect"
	"testing"

	"github.com/fieldsync/fieldsync/models"
)

// TestErrorConstructors pins the messages the constructors build: clients
// show them, so a refactor that goes through a constructor must not change
// a byte.
func TestErrorConstructors(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  *models.Error
		want *models.Error
	}{
		{"Errorf", models.Errorf(models.CodeMalformed, "malformed JSON at byte %d", 7),
			&models.Error{Code: models.CodeMalformed, Message: "malformed JSON at byte 7"}},
		{"FieldInvalid", models.FieldInvalid("email", "must be %s", "an address"),
			&models.Error{Code: models.CodeInvalid, Message: "email: must be an address", Fields: []models.FieldError{{Field: "email", Code: models.CodeInvalid, Message: "must be an address"}}}},
		{"Invalid names the first", models.Invalid([]models.FieldError{{Field: "a", Code: models.CodeInvalid, Message: "is required"}, {Field: "b", Code: models.CodeInvalid, Message: "is too long"}}),
			&models.Error{Code: models.CodeInvalid, Message: "a: is required", Fields: []models.FieldError{{Field: "a", Code: models.CodeInvalid, Message: "is required"}, {Field: "b", Code: models.CodeInvalid, Message: "is too long"}}}},
		{"UnknownField", models.UnknownField("colour"),
			&models.Error{Code: models.CodeInvalid, Message: `unknown field "colour"`, Fields: []models.FieldError{{Field: "colour", Code: models.CodeUnknownField, Message: "is not a field of this request"}}}},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s: got %+v, want %+v", tc.name, tc.got, tc.want)
		}
	}
}
