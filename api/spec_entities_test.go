package api_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/fieldsync/fieldsync/internal/apitest"
	"github.com/fieldsync/fieldsync/sales"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// recordSchemas names the openapi.yaml schema that describes the records of
// each synced entity, as Entity.MarshalRecord encodes them in pulls and in
// the HTTP resources. The entity's upsert change is "<schema>Upsert" in the
// Change oneOf, and a writable entity's mutation fields are
// "<schema>Fields" in the Mutation.fields anyOf. A new entity must be added
// here and to openapi.yaml.
var recordSchemas = map[string]string{
	"accounts":      "Account",
	"visits":        "Visit",
	"activities":    "Activity",
	"ride_alongs":   "RideAlong",
	"assessments":   "Assessment",
	"contests":      "Contest",
	"score_entries": "ScoreEntry",
	"standings":     "Standing",
	"recognitions":  "Recognition",
	"notifications": "Notification",
}

// auditFields are the properties every record starts with.
var auditFields = []string{"id", "version", "created_at", "updated_at"}

// TestSpecEntities keeps openapi.yaml in step with the sync engine's
// entities: every record schema lists exactly the fields the engine sends,
// with their JSON types, enums and nullability; Mutation.entity lists the
// writable entities and Mutation.fields their client-writable fields; and
// a pull's Change covers every entity. Adding, removing or retyping a field
// of an entity without the spec fails here.
func TestSpecEntities(t *testing.T) {
	doc, err := apitest.LoadSpec()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range entityProblems(doc, sales.Entities()) {
		t.Error(p)
	}
}

// TestSpecEntitiesCatches shows the check fails when an entity changes
// without the spec.
func TestSpecEntitiesCatches(t *testing.T) {
	doc, err := apitest.LoadSpec()
	if err != nil {
		t.Fatal(err)
	}
	entity := func(es []*engine.Entity, name string) *engine.Entity {
		for _, e := range es {
			if e.Name == name {
				return e
			}
		}
		t.Fatalf("no entity %q", name)
		return nil
	}
	field := func(e *engine.Entity, name string) *engine.Field {
		for i := range e.Fields {
			if e.Fields[i].Name == name {
				return &e.Fields[i]
			}
		}
		t.Fatalf("%s has no field %q", e.Name, name)
		return nil
	}
	for _, tc := range []struct {
		name   string
		change func(es []*engine.Entity) []*engine.Entity
		want   string // a substring of some problem
	}{
		{"new field", func(es []*engine.Entity) []*engine.Entity {
			e := entity(es, "visits")
			e.Fields = append(e.Fields, engine.Field{Name: "mood", Type: engine.String})
			return es
		}, `"mood"`},
		{"new writable field missing from the mutation fields", func(es []*engine.Entity) []*engine.Entity {
			e := entity(es, "ride_alongs")
			e.Fields = append(e.Fields, engine.Field{Name: "agenda", Type: engine.Text})
			return es
		}, "RideAlongFields"},
		{"retyped field", func(es []*engine.Entity) []*engine.Entity {
			field(entity(es, "standings"), "rank").Type = engine.Float
			return es
		}, `"rank"`},
		{"new enum value", func(es []*engine.Entity) []*engine.Entity {
			f := field(entity(es, "ride_alongs"), "status")
			f.Enum = append(slices.Clone(f.Enum), "postponed")
			return es
		}, "postponed"},
		{"required field", func(es []*engine.Entity) []*engine.Entity {
			field(entity(es, "assessments"), "rep_comment").Required = true
			return es
		}, "nullable"},
		{"field now server-owned", func(es []*engine.Entity) []*engine.Entity {
			field(entity(es, "recognitions"), "badge").Access = engine.ServerOwned
			return es
		}, "RecognitionFields"},
		{"entity now read-only", func(es []*engine.Entity) []*engine.Entity {
			entity(es, "recognitions").ReadOnly = true
			return es
		}, "Mutation.entity"},
		{"new entity", func(es []*engine.Entity) []*engine.Entity {
			return append(es, &engine.Entity{Name: "widgets", Fields: []engine.Field{{Name: "size", Type: engine.Int}}})
		}, "widgets"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			problems := entityProblems(doc, tc.change(sales.Entities()))
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tc.want) }) {
				t.Errorf("no problem mentions %s; got:\n%s", tc.want, strings.Join(problems, "\n"))
			}
		})
	}
}

// entityProblems lists every way openapi.yaml disagrees with entities.
func entityProblems(doc *openapi3.T, entities []*engine.Entity) []string {
	var out []string
	bad := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	schemas := doc.Components.Schemas
	schema := func(name string) *openapi3.Schema {
		if ref := schemas[name]; ref != nil && ref.Value != nil {
			return ref.Value
		}
		return nil
	}

	var all, writable []string
	for _, e := range entities {
		all = append(all, e.Name)
		if !e.ReadOnly {
			writable = append(writable, e.Name)
		}
	}

	// Records: exactly what MarshalRecord sends.
	for _, e := range entities {
		name, ok := recordSchemas[e.Name]
		if !ok {
			bad("entity %q has no record schema: add it to recordSchemas in this test and to openapi.yaml", e.Name)
			continue
		}
		s := schema(name)
		if s == nil {
			bad("entity %q: openapi.yaml has no schema %s for its records", e.Name, name)
			continue
		}
		where := "schema " + name + " (entity " + e.Name + ")"
		if !closed(s) {
			bad("%s: must have additionalProperties: false", where)
		}
		want := slices.Clone(auditFields)
		for _, f := range e.Fields {
			if !f.Hidden {
				want = append(want, f.Name)
			}
		}
		sameNames(bad, where, "properties", want, propertyNames(s))
		// Every field is always sent, null when unset.
		sameNames(bad, where, "required", want, s.Required)
		checkAudit(bad, where, s)
		for _, f := range e.Fields {
			if p := prop(s, f.Name); p != nil && !f.Hidden {
				checkField(bad, where, f, p)
			}
		}
	}

	// Mutations: the writable entities and their client-writable fields.
	mutation := schema("Mutation")
	if mutation == nil {
		bad("openapi.yaml has no schema Mutation")
	} else {
		if p := prop(mutation, "entity"); p == nil {
			bad("schema Mutation has no property entity")
		} else {
			sameNames(bad, "Mutation.entity", "enum (the entities that are not ReadOnly)", writable, enumStrings(p))
		}
		var anyOf []string
		if p := prop(mutation, "fields"); p != nil {
			for _, r := range p.AnyOf {
				anyOf = append(anyOf, refName(r))
			}
		}
		var wantAnyOf []string
		for _, e := range entities {
			if e.ReadOnly || recordSchemas[e.Name] == "" {
				continue
			}
			name := recordSchemas[e.Name] + "Fields"
			wantAnyOf = append(wantAnyOf, name)
			s := schema(name)
			if s == nil {
				bad("entity %q is writable but openapi.yaml has no schema %s for its mutation fields", e.Name, name)
				continue
			}
			where := "schema " + name + " (mutation fields of " + e.Name + ")"
			if !closed(s) {
				bad("%s: must have additionalProperties: false", where)
			}
			var want []string
			for _, f := range e.Fields {
				if !f.Hidden && f.Access != engine.ServerOwned {
					want = append(want, f.Name)
				}
			}
			sameNames(bad, where, "properties (the fields that are neither Hidden nor ServerOwned)", want, propertyNames(s))
			for _, f := range e.Fields {
				if p := prop(s, f.Name); p != nil && !f.Hidden && f.Access != engine.ServerOwned {
					checkField(bad, where, f, p)
				}
			}
		}
		sameNames(bad, "Mutation.fields", "anyOf", wantAnyOf, anyOf)
	}

	// Pulls: an upsert change for every entity, a tombstone for every
	// entity clients delete.
	change := schema("Change")
	if change == nil {
		bad("openapi.yaml has no schema Change")
	} else {
		upserts := map[string]string{} // entity -> data schema
		var tombstones []string
		for _, r := range change.OneOf {
			s := r.Value
			if s == nil || prop(s, "op") == nil || prop(s, "entity") == nil {
				bad("Change oneOf member %s has no op or entity", refName(r))
				continue
			}
			switch ops := enumStrings(prop(s, "op")); {
			case slices.Equal(ops, []string{"upsert"}):
				names := enumStrings(prop(s, "entity"))
				if len(names) != 1 {
					bad("Change oneOf member %s: an upsert names exactly one entity, not %v", refName(r), names)
					continue
				}
				data := prop(s, "data")
				if data == nil {
					bad("Change oneOf member %s has no data", refName(r))
					continue
				}
				upserts[names[0]] = refName(s.Properties["data"])
				if !slices.Contains(all, names[0]) {
					bad("Change oneOf member %s is for %q, which is no entity", refName(r), names[0])
				}
			case slices.Equal(ops, []string{"delete"}):
				tombstones = append(tombstones, enumStrings(prop(s, "entity"))...)
			default:
				bad("Change oneOf member %s: op must be upsert or delete, not %v", refName(r), ops)
			}
		}
		for _, e := range entities {
			data, ok := upserts[e.Name]
			switch {
			case !ok:
				bad("Change: no oneOf member for upserts of entity %q (%sUpsert)", e.Name, recordSchemas[e.Name])
			case recordSchemas[e.Name] != "" && data != recordSchemas[e.Name]:
				bad("Change: the upsert of entity %q has data %s, want %s", e.Name, data, recordSchemas[e.Name])
			}
		}
		for _, name := range writable {
			if !slices.Contains(tombstones, name) {
				bad("Change: no tombstone (op delete) lists entity %q, which clients delete", name)
			}
		}
		for _, name := range tombstones {
			if !slices.Contains(all, name) {
				bad("Change: a tombstone lists %q, which is no entity", name)
			}
		}
	}

	// Conflicts arise where pushes merge: on the writable entities.
	if s := schema("ConflictRecord"); s == nil || prop(s, "entity") == nil {
		bad("openapi.yaml has no schema ConflictRecord with an entity")
	} else {
		sameNames(bad, "ConflictRecord.entity", "enum (the entities that are not ReadOnly)", writable, enumStrings(prop(s, "entity")))
	}
	return out
}

// checkAudit checks the properties every record starts with.
func checkAudit(bad func(string, ...any), where string, s *openapi3.Schema) {
	for name, want := range map[string][2]string{
		"id": {"string", "uuid"}, "version": {"integer", ""},
		"created_at": {"string", "date-time"}, "updated_at": {"string", "date-time"},
	} {
		p := prop(s, name)
		if p == nil {
			continue // reported with the property names
		}
		if typeOf(p) != want[0] || (want[1] != "" && p.Format != want[1]) || p.Nullable {
			bad("%s: property %q must be a non-null %s %s", where, name, want[0], want[1])
		}
	}
}

// checkField checks a property describes a field as the engine encodes and
// parses it.
func checkField(bad func(string, ...any), where string, f engine.Field, p *openapi3.Schema) {
	if p.Nullable == f.Required {
		bad("%s: property %q must be nullable: %t (the field is %s)", where, f.Name, !f.Required,
			map[bool]string{true: "required", false: "optional, null when unset"}[f.Required])
	}
	want, format := "", ""
	switch f.Type {
	case engine.String, engine.Text, engine.Enum:
		want = "string"
	case engine.UUID:
		want, format = "string", "uuid"
	case engine.Time:
		want, format = "string", "date-time"
	case engine.Float, engine.Money:
		want = "number"
	case engine.Int:
		want = "integer"
	case engine.Bool:
		want = "boolean"
	case engine.JSON:
		return // any JSON value; the schema may describe its shape
	default:
		bad("%s: field %q has a type this test does not know (%d)", where, f.Name, f.Type)
		return
	}
	if got := typeOf(p); got != want {
		bad("%s: property %q must have type %s, not %q", where, f.Name, want, got)
	}
	if format != "" && p.Format != format {
		bad("%s: property %q must have format %s, not %q", where, f.Name, format, p.Format)
	}
	switch {
	case f.Type == engine.Enum:
		sameNames(bad, where+" property "+f.Name, "enum", f.Enum, enumStrings(p))
	case len(p.Enum) > 0:
		bad("%s: property %q has an enum, but field %q is no Enum", where, f.Name, f.Name)
	}
}

// sameNames reports the difference between two sets of names.
func sameNames(bad func(string, ...any), where, what string, want, got []string) {
	var missing, extra []string
	for _, n := range want {
		if !slices.Contains(got, n) {
			missing = append(missing, fmt.Sprintf("%q", n))
		}
	}
	for _, n := range got {
		if !slices.Contains(want, n) {
			extra = append(extra, fmt.Sprintf("%q", n))
		}
	}
	if len(missing) > 0 {
		bad("%s: %s lack %s", where, what, strings.Join(missing, ", "))
	}
	if len(extra) > 0 {
		bad("%s: %s have %s, which the engine does not", where, what, strings.Join(extra, ", "))
	}
}

func prop(s *openapi3.Schema, name string) *openapi3.Schema {
	if r := s.Properties[name]; r != nil {
		return r.Value
	}
	return nil
}

func propertyNames(s *openapi3.Schema) []string {
	names := make([]string, 0, len(s.Properties))
	for n := range s.Properties {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func closed(s *openapi3.Schema) bool {
	return s.AdditionalProperties.Has != nil && !*s.AdditionalProperties.Has
}

func typeOf(s *openapi3.Schema) string {
	if s.Type == nil {
		return ""
	}
	return strings.Join(s.Type.Slice(), ",")
}

func enumStrings(s *openapi3.Schema) []string {
	out := make([]string, 0, len(s.Enum))
	for _, v := range s.Enum {
		out = append(out, fmt.Sprint(v))
	}
	return out
}

func refName(r *openapi3.SchemaRef) string {
	if r == nil {
		return "(none)"
	}
	if r.Ref == "" {
		return "(inline)"
	}
	return r.Ref[strings.LastIndex(r.Ref, "/")+1:]
}
