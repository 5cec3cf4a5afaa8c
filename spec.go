// Package fieldsync holds what belongs to the whole module rather than to a
// layer: the HTTP contract, openapi.yaml, embedded so the binary serves it.
package fieldsync

import _ "embed"

// OpenAPI is the text of openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte
