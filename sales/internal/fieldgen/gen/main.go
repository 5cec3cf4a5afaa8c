// Command gen writes sales/fields_gen.go from the sales entity
// declarations; run it with go generate in sales/.
package main

import (
	"log"
	"os"

	"github.com/fieldsync/fieldsync/sales"
	"github.com/fieldsync/fieldsync/sales/internal/fieldgen"
)

func main() {
	src, err := fieldgen.Render(sales.Entities())
	if err != nil {
		log.Fatalf("render field constants: %v", err)
	}
	if err := os.WriteFile("fields_gen.go", src, 0o644); err != nil {
		log.Fatalf("write field constants: %v", err)
	}
}
