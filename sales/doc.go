// Package sales holds fieldsync's field-sales rules, plugged into the sync
// engine through its hooks: the synced entities (Entities), visit
// verification and duplicate accounts, the ride-along state machine,
// assessments, contests with their score ledger, standings and ranks,
// recognitions, and the triggers that write notifications in the same
// transaction as the change behind them.
//
// Rules see a push only through engine.Context and name fields through the
// constants of fields_gen.go, generated from the declarations.
package sales
