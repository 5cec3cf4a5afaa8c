'use strict'
// Two phones of one rep, each with the real WatermelonDB, sync against a
// real fieldsync through synchronize(): offline creates on both, edits of
// the same visit, a delete against an edit, a push racing a pull, and lost
// push responses. At the end both phones must hold exactly what the
// server holds, with nothing lost and nothing resurrected.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')

const { Server, Phone, HTTPError, serverView, syncErrors } = require('./harness')

const REP = 'rep1@demo.test'
const server = new Server()

before(async () => {
  await server.start()
})

after(async () => {
  await server.stop()
})

// settle syncs both phones until neither has anything left to push and a
// further round changes nothing.
async function settle(...phones) {
  for (let round = 0; round < 3; round++) {
    for (const p of phones) await p.sync()
  }
  for (const p of phones) assert.equal(await p.pending(), false, `${p.name} still has unsynced changes`)
}

async function assertIdentical(phones, email) {
  const truth = await serverView(server, email)
  for (const table of ['accounts', 'visits']) {
    for (const p of phones) {
      assert.deepEqual(await p.records(table), truth[table], `${p.name}'s ${table} differ from the server's`)
    }
  }
  return truth
}

test('two WatermelonDB phones converge with the server', { timeout: 300_000 }, async () => {
  const a = await Phone.open(server, 'phone-a', REP)
  const b = await Phone.open(server, 'phone-b', REP)

  // First sync: the team's accounts arrive on both.
  await a.sync()
  await b.sync()
  const accounts = Object.keys(await a.records('accounts'))
  assert.equal(accounts.length, 20, 'rep1 sees North\'s 20 accounts')
  await assertIdentical([a, b], REP)

  const now = Date.now()
  // Offline creates on both phones.
  const va1 = await a.create('visits', { account_id: accounts[0], kind: 'unscheduled', status: 'completed', outcome: 'none', started_at: now - 3_600_000, notes: 'walk-in', referrals: 0 })
  const va2 = await a.create('visits', { account_id: accounts[1], kind: 'unscheduled', status: 'completed', outcome: 'none', started_at: now - 1_800_000, referrals: 0 })
  const prospect = await b.create('accounts', { name: 'Corner Deli (new prospect)', status: 'prospect', city: 'Minneapolis', lat: 44.95, lng: -93.27 })
  const vb1 = await b.create('visits', { account_id: prospect, kind: 'unscheduled', status: 'completed', outcome: 'follow_up', started_at: now - 600_000, notes: 'cold call', referrals: 1 })
  await settle(a, b)
  let truth = await assertIdentical([a, b], REP)
  for (const id of [va1, va2, vb1]) assert.ok(truth.visits[id], `visit ${id} reached the server`)
  assert.ok(truth.accounts[prospect].team_id, 'the server set the new account\'s team')
  assert.equal(truth.visits[va1].rep_id, a.session.userId, 'the server set rep_id')

  // Edits of the same visit on both phones, offline: different columns,
  // and one column both changed (the later push wins it).
  await a.update('visits', va1, { referrals: 2, notes: 'walk-in, asked for a quote' })
  await b.update('visits', va1, { outcome: 'meeting', notes: 'walk-in, meeting booked' })
  await a.sync()
  await b.sync()
  await settle(a, b)
  truth = await assertIdentical([a, b], REP)
  assert.equal(truth.visits[va1].referrals, 2, 'phone A\'s referrals survive')
  assert.equal(truth.visits[va1].outcome, 'meeting', 'phone B\'s outcome survives')
  assert.equal(truth.visits[va1].notes, 'walk-in, meeting booked', 'the later push wins the column both edited')

  // A delete on one phone while the other edits the same visit: delete
  // wins, on both phones and on the server; nothing comes back.
  await a.remove('visits', vb1)
  await b.update('visits', vb1, { notes: 'edited after it was deleted elsewhere' })
  await a.sync()
  await b.sync()
  await settle(a, b)
  truth = await assertIdentical([a, b], REP)
  assert.equal(truth.visits[vb1], undefined, 'the deleted visit stays deleted')

  // A push racing a pull: B pulls, then, before B pushes, A syncs an edit
  // of the visit B edited too. B's push is stale: 409, nothing applied;
  // B synchronizes again (pull, merge per column, push) and both edits
  // land.
  await a.update('visits', va2, { outcome: 'demo' })
  await b.update('visits', va2, { notes: 'demo went well' })
  let raced = false
  b.hooks.beforePush = async () => {
    if (raced) return
    raced = true
    await a.sync()
  }
  await b.sync()
  b.hooks.beforePush = undefined
  assert.ok(b.conflicts >= 1, 'the stale push was answered 409 and retried')
  // And truly concurrent: A pushes while B pulls, both in flight at once.
  const va3 = await a.create('visits', { account_id: accounts[2], kind: 'scheduled', status: 'completed', outcome: 'order', order_value: 1250.5, started_at: now - 300_000, referrals: 0 })
  let pushStarted
  const started = new Promise((r) => (pushStarted = r))
  a.hooks.beforePush = async () => pushStarted()
  b.hooks.beforePull = async () => started
  await Promise.all([a.sync(), b.sync()])
  a.hooks.beforePush = b.hooks.beforePull = undefined
  await settle(a, b)
  truth = await assertIdentical([a, b], REP)
  assert.equal(truth.visits[va2].outcome, 'demo')
  assert.equal(truth.visits[va2].notes, 'demo went well')
  assert.equal(truth.visits[va3].order_value, 1250.5)

  // A lost push response, retried within pushChanges with the same
  // last_pulled_at: the server applied the first, the second succeeds and
  // changes nothing.
  const va4 = await a.create('visits', { account_id: accounts[3], kind: 'unscheduled', status: 'completed', outcome: 'none', started_at: now - 120_000, notes: 'first lost response', referrals: 0 })
  await a.update('visits', va1, { referrals: 3 })
  await a.remove('visits', va3)
  let second
  a.hooks.afterPush = async (res, changes, lastPulledAt) => {
    a.hooks.afterPush = undefined
    // The response above never reached the phone; it sends the push again.
    const retry = await a.postChanges(changes, lastPulledAt)
    assert.equal(retry.status, 200, `retried push: ${retry.status}`)
    second = await retry.json()
  }
  await a.sync()
  assert.deepEqual({ written: second.written, unchanged: second.unchanged, rejected: second.rejected }, { written: 0, unchanged: 3, rejected: [] }, 'the retried push wrote nothing')

  // A lost push response that fails synchronize(): the next synchronize()
  // pulls the phone's own changes back (as updates) and pushes them again.
  const va5 = await a.create('visits', { account_id: accounts[4], kind: 'unscheduled', status: 'completed', outcome: 'none', started_at: now - 60_000, notes: 'second lost response', referrals: 0 })
  await a.remove('visits', va2)
  await a.update('accounts', accounts[0], { notes: 'prefers mornings' })
  a.hooks.afterPush = async () => {
    a.hooks.afterPush = undefined
    throw new Error('network: connection reset before the response arrived')
  }
  await assert.rejects(a.sync(), /connection reset/)
  assert.equal(await a.pending(), true, 'the phone still holds its changes')
  // Meanwhile B edits the visit A created in the lost push.
  await b.sync()
  await b.update('visits', va5, { notes: 'second lost response, seen on B' })
  await settle(a, b)

  truth = await assertIdentical([a, b], REP)
  const live = Object.keys(truth.visits)
  for (const id of [va1, va4, va5]) assert.ok(live.includes(id), `visit ${id} was lost`)
  for (const id of [va2, va3, vb1]) assert.ok(!live.includes(id), `deleted visit ${id} came back`)
  assert.equal(truth.visits[va1].referrals, 3)
  assert.equal(truth.visits[va5].notes, 'second lost response, seen on B')
  assert.equal(truth.accounts[accounts[0]].notes, 'prefers mornings')
  assert.equal(live.filter((id) => truth.visits[id].notes === 'first lost response').length, 1, 'the lost push applied once')

  // A third phone's first sync agrees too.
  const c = await Phone.open(server, 'phone-c', REP)
  await c.sync()
  await assertIdentical([a, b, c], REP)

  // WatermelonDB never saw the server break the protocol: no own create
  // sent back as created, no deleted record re-created, no timestamp
  // going back.
  const broken = syncErrors.filter((m) => /wants client to create record|previous pulled-at time was greater|Invalid raw record/.test(m))
  assert.deepEqual(broken, [], 'WatermelonDB reported protocol violations')
})

test('bad requests are refused with problem+json', async () => {
  const { token } = await server.login(REP)
  const res = await fetch(`${server.base}/v1/sync/watermelondb?last_pulled_at=null&schema_version=99`, { headers: { Authorization: `Bearer ${token}` } })
  assert.equal(res.status, 400)
  assert.equal(res.headers.get('content-type'), 'application/problem+json')
  assert.equal((await res.json()).code, 'unsupported_schema')
  assert.ok(HTTPError)
})
