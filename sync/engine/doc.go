// Package engine is fieldsync's offline sync engine: batched pushes applied
// exactly once per device sequence number, field-level conflict resolution
// by hybrid logical clocks, and pulls that never skip a committed change.
//
// Entities plug in by declaring themselves (Entity): their fields and
// types, which fields clients may write, who may see and write a record,
// and validation hooks. The engine declares the Store it needs; package
// store implements it over PostgreSQL and SQLite.
package engine
