'use strict'
// Sync that real apps live with: phones whose local schema is an app's,
// not the server's — required columns non-optional, and the columns the
// server derives (team_id, rep_id, manager_id, requested_by, verification,
// …) declared as ordinary non-optional columns, so WatermelonDB fills them
// with "", 0 or false — pushing without schema_version, as WatermelonDB's
// pushChanges has none to send. Each scenario ends with the phones and the
// server converged and nothing left to push (except, by design, the one
// record the rules refuse: it stays dirty, and everything else syncs).

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')

const { Model, appSchema, tableSchema } = require('@nozbe/watermelondb')
const { Server, Phone, serverView, syncErrors } = require('./harness')

const REP = 'rep2@demo.test'
const MANAGER = 'manager1@demo.test'
const server = new Server()

const str = (name, extra) => ({ name, type: 'string', ...extra })
const num = (name, extra) => ({ name, type: 'number', ...extra })
const bool = (name) => ({ name, type: 'boolean' })
const opt = { isOptional: true }

// appSchema is what a WatermelonDB app declares: only money, coordinates
// and optional times may be null; everything else has a value.
const schema = appSchema({
  version: 7,
  tables: [
    tableSchema({
      name: 'accounts',
      columns: [str('name'), str('status'), str('city'), str('notes'), num('lat', opt), num('lng', opt),
        str('owner_rep_id'), str('team_id'), str('possible_duplicate_of'), num('created_at'), num('updated_at')],
    }),
    tableSchema({
      name: 'visits',
      columns: [str('account_id', { isIndexed: true }), str('kind'), str('status'), str('outcome'), num('order_value', opt),
        num('referrals'), str('notes'), num('started_at', opt), num('ended_at', opt), num('check_in_lat', opt), num('check_in_lng', opt),
        str('rep_id'), str('team_id'), str('verification'), num('check_in_distance_m'), num('created_at'), num('updated_at')],
    }),
    tableSchema({
      name: 'ride_alongs',
      columns: [str('rep_id'), str('manager_id'), str('visit_id'), str('mode'), str('status'), str('requested_by'), str('note'),
        num('scheduled_for', opt), bool('joint_verified'), num('completed_at', opt), str('team_id'), num('created_at'), num('updated_at')],
    }),
  ],
})

class Account extends Model {
  static table = 'accounts'
}
class Visit extends Model {
  static table = 'visits'
}
class RideAlong extends Model {
  static table = 'ride_alongs'
}
const opts = { schema, modelClasses: [Account, Visit, RideAlong], pushSchemaVersion: false }
const TABLES = ['accounts', 'visits', 'ride_alongs']

before(async () => {
  await server.start()
})

after(async () => {
  await server.stop()
})

// local is what a phone of this schema holds for a server record of
// table: the server's nulls in non-optional columns become WatermelonDB's
// defaults.
function local(table, raw) {
  const out = {}
  for (const [k, v] of Object.entries(raw)) {
    const col = schema.tables[table].columns[k]
    out[k] = v === null && col && !col.isOptional ? { string: '', number: 0, boolean: false }[col.type] : v
  }
  return out
}

async function settle(...phones) {
  for (let round = 0; round < 3; round++) {
    for (const p of phones) await p.sync()
  }
}

async function assertConverged(phones, { dirty = [] } = {}) {
  const truth = await serverView(server, REP, schema)
  for (const table of TABLES) {
    const want = {}
    for (const [id, raw] of Object.entries(truth[table] ?? {})) want[id] = local(table, raw)
    for (const p of phones) {
      const got = await p.records(table)
      for (const id of dirty) delete got[id]
      assert.deepEqual(got, want, `${p.name}'s ${table} differ from the server's`)
    }
  }
  for (const p of phones) {
    if (dirty.length === 0) assert.equal(await p.pending(), false, `${p.name} still has unsynced changes`)
  }
  return truth
}

async function get(path, token) {
  const res = await fetch(server.base + path, { headers: { Authorization: `Bearer ${token}` } })
  assert.equal(res.status, 200, `GET ${path}: ${res.status}`)
  return res.json()
}

test('an app schema syncs: ride-along requests, concurrent outcomes, a refused record', { timeout: 300_000 }, async () => {
  const a = await Phone.open(server, 'app-a', REP, opts)
  const b = await Phone.open(server, 'app-b', REP, opts)
  const manager = await server.login(MANAGER)
  await a.sync()
  await b.sync()
  const accounts = Object.keys(await a.records('accounts'))
  assert.equal(accounts.length, 20)
  await assertConverged([a, b])

  // 1. The rep asks their manager for a ride-along: one phone fills in
  // the manager and "rep" as the app knows them, the other leaves the
  // server's columns at WatermelonDB's defaults. Pushed without
  // schema_version; nothing refused.
  const named = await a.create('ride_alongs', { mode: 'next_unscheduled', status: 'requested', manager_id: manager.userId, requested_by: 'rep', note: 'help with walk-ins', rep_id: a.session.userId })
  const blank = await b.create('ride_alongs', { mode: 'next_unscheduled', status: 'requested', note: 'and with closing' })
  await settle(a, b)
  let truth = await assertConverged([a, b])
  for (const id of [named, blank]) {
    assert.equal(truth.ride_alongs[id].manager_id, manager.userId, 'the request goes to the rep\'s own manager')
    assert.equal(truth.ride_alongs[id].requested_by, 'rep')
    assert.equal(truth.ride_alongs[id].status, 'requested')
  }
  assert.deepEqual(a.lastPush.experimentalRejectedIds, {}, 'nothing was refused')

  // 2. Two phones of the rep edit one visit offline: A records an order,
  // B (later) a follow-up with notes. The later outcome wins, the order
  // value leaves the record (kept in the conflict log), B's notes land.
  const now = Date.now()
  const visit = await a.create('visits', { account_id: accounts[0], kind: 'unscheduled', status: 'completed', outcome: 'none', referrals: 0, started_at: now - 3_600_000 })
  await settle(a, b)
  await a.update('visits', visit, { outcome: 'order', order_value: 1250.5 })
  await b.update('visits', visit, { outcome: 'follow_up', notes: 'call back Tuesday' })
  await a.sync()
  await b.sync()
  await settle(a, b)
  truth = await assertConverged([a, b])
  assert.equal(truth.visits[visit].outcome, 'follow_up', 'the later outcome wins')
  assert.equal(truth.visits[visit].order_value, null, 'the order value left the record')
  assert.equal(truth.visits[visit].notes, 'call back Tuesday', 'B\'s notes were not lost')
  for (const token of [a.session.token, manager.token]) {
    const { conflicts } = await get('/v1/sync/conflicts', token)
    const c = conflicts.find((c) => c.record_id === visit && c.field === 'order_value')
    assert.ok(c && (c.server_value === 1250.5 || c.client_value === 1250.5), 'the order value is kept in the conflict log')
  }

  // 3. A record the rules refuse does not block the phone's others: the
  // refused one stays dirty and is reported; the rest syncs.
  const bad = await a.create('visits', { account_id: accounts[1], kind: 'unscheduled', status: 'completed', outcome: 'meeting', order_value: 99, referrals: 0, started_at: now - 1_800_000 })
  const good = await a.create('visits', { account_id: accounts[2], kind: 'unscheduled', status: 'completed', outcome: 'demo', notes: 'synced despite the other', referrals: 1, started_at: now - 900_000 })
  const prospect = await a.create('accounts', { name: 'Harbor Tools (new prospect)', status: 'prospect', city: 'Duluth' })
  await a.update('visits', visit, { referrals: 2 })
  await settle(a, b)
  assert.deepEqual(a.lastPush.experimentalRejectedIds, { visits: [bad] }, 'only the contradictory visit is refused')
  truth = await assertConverged([a, b], { dirty: [bad] })
  for (const [table, id] of [['visits', good], ['accounts', prospect]]) assert.ok(truth[table][id], `${table} ${id} synced`)
  assert.equal(truth.visits[visit].referrals, 2)
  assert.equal(truth.visits[bad], undefined, 'the refused visit is not on the server')
  const still = (await a.db.get('visits').find(bad))._raw._status
  assert.equal(still, 'created', 'WatermelonDB keeps the refused record dirty')
  const { rejections } = await get('/v1/sync/rejections', a.session.token)
  assert.ok(rejections.some((r) => r.id === bad && r.entity === 'visits' && r.field === 'order_value' && r.code === 'invalid_value'), 'the refusal is reported')
  // The rep fixes it; then everything converges and nothing is dirty.
  await a.update('visits', bad, { outcome: 'order' })
  await settle(a, b)
  truth = await assertConverged([a, b])
  assert.equal(truth.visits[bad].order_value, 99)

  const broken = syncErrors.filter((m) => /wants client to create record|previous pulled-at time was greater|Invalid raw record/.test(m))
  assert.deepEqual(broken, [], 'WatermelonDB reported protocol violations')
})
