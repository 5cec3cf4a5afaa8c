package sales_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/fieldsync/fieldsync/sales"
	"github.com/fieldsync/fieldsync/sales/internal/fieldgen"
)

// TestFieldConstantsMatchDeclarations holds fields_gen.go to the entity
// declarations: a field added, renamed or dropped without go generate
// fails here, and a rule still reading a dropped field fails to compile.
func TestFieldConstantsMatchDeclarations(t *testing.T) {
	want, err := fieldgen.Render(sales.Entities())
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("fields_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("fields_gen.go is stale; run go generate ./sales")
	}
}

// TestRulesNameNoFieldByString keeps rule code off bare field and entity
// names: outside the entity declarations (functions returning
// *engine.Entity, and the field makers they use), a string literal equal
// to a declared name must be a constant of fields_gen.go instead. Enum
// values that happen to equal a field name ("badge", "outcome") are
// values, and allowed.
func TestRulesNameNoFieldByString(t *testing.T) {
	names, values := map[string]bool{}, map[string]bool{}
	for _, e := range sales.Entities() {
		names[e.Name] = true
		for _, f := range e.Fields {
			names[f.Name] = true
			for _, v := range f.Enum {
				values[v] = true
			}
		}
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") || path == "fields_gen.go" {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			if declaresEntity(d) {
				continue
			}
			ast.Inspect(d, func(n ast.Node) bool {
				lit, ok := n.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					return true
				}
				s, err := strconv.Unquote(lit.Value)
				if err == nil && names[s] && !values[s] {
					t.Errorf("%s: bare field or entity name %q; use its constant from fields_gen.go", fset.Position(lit.Pos()), s)
				}
				checked++
				return true
			})
		}
	}
	if checked == 0 {
		t.Fatal("no string literal checked: the test is not reading the rules")
	}
}

// declaresEntity reports whether d is part of an entity declaration: a
// function returning *engine.Entity, or the latField/lngField makers.
func declaresEntity(d ast.Decl) bool {
	switch d := d.(type) {
	case *ast.FuncDecl:
		if d.Type.Results == nil || len(d.Type.Results.List) != 1 {
			return false
		}
		star, ok := d.Type.Results.List[0].Type.(*ast.StarExpr)
		if !ok {
			return false
		}
		sel, ok := star.X.(*ast.SelectorExpr)
		return ok && sel.Sel.Name == "Entity"
	case *ast.GenDecl:
		for _, s := range d.Specs {
			if vs, ok := s.(*ast.ValueSpec); ok {
				for _, n := range vs.Names {
					if n.Name == "latField" || n.Name == "lngField" {
						return true
					}
				}
			}
		}
	}
	return false
}
