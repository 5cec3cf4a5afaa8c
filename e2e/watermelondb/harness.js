'use strict'
// Test harness: a real fieldsync server on a loopback port, and phones
// running the real @nozbe/watermelondb (LokiJS adapter, in memory, plain
// Node) that sync with it through synchronize(), wired the way the README
// tells a React Native app to.

const { spawn, execFileSync } = require('node:child_process')
const crypto = require('node:crypto')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')

const { Database, Model, appSchema, tableSchema } = require('@nozbe/watermelondb')
const LokiJSAdapter = require('@nozbe/watermelondb/adapters/lokijs').default
const { synchronize, hasUnsyncedChanges } = require('@nozbe/watermelondb/sync')
const { setGenerator } = require('@nozbe/watermelondb/utils/common/randomId')
const logger = require('@nozbe/watermelondb/utils/common/logger').default

const REPO = path.resolve(__dirname, '..', '..')
const SCHEMA_VERSION = 1 // fieldsync's sync schema, not the local one
const PASSWORD = 'demo-pass-1234'

// fieldsync ids are UUIDs; WatermelonDB's default ids are not.
setGenerator(() => crypto.randomUUID())

// WatermelonDB reports what it finds suspicious about a sync through its
// logger rather than by throwing. Keep those reports: a test fails on the
// ones that mean the server broke the protocol.
const syncErrors = []
logger.log = () => {}
logger.debug = () => {}
logger.warn = () => {}
logger.error = (...msgs) => {
  syncErrors.push(msgs.map((m) => (m instanceof Error ? m.message : String(m))).join(' '))
}

// The local schema: the server's columns (the native wire names), times
// as numbers (Unix ms), every nullable column optional. `ui_state` is a
// local-only table: WatermelonDB lists it in every push, with no changes.
const schema = appSchema({
  version: 3, // the app's own local schema version; it has nothing to do with SCHEMA_VERSION
  tables: [
    tableSchema({
      name: 'accounts',
      columns: [
        { name: 'name', type: 'string' },
        { name: 'address', type: 'string', isOptional: true },
        { name: 'city', type: 'string', isOptional: true },
        { name: 'lat', type: 'number', isOptional: true },
        { name: 'lng', type: 'number', isOptional: true },
        { name: 'status', type: 'string', isOptional: true },
        { name: 'phone', type: 'string', isOptional: true },
        { name: 'notes', type: 'string', isOptional: true },
        { name: 'owner_rep_id', type: 'string', isOptional: true },
        { name: 'team_id', type: 'string', isOptional: true },
        { name: 'possible_duplicate_of', type: 'string', isOptional: true },
        { name: 'created_at', type: 'number' },
        { name: 'updated_at', type: 'number' },
      ],
    }),
    tableSchema({
      name: 'visits',
      columns: [
        { name: 'account_id', type: 'string', isIndexed: true },
        { name: 'kind', type: 'string', isOptional: true },
        { name: 'status', type: 'string', isOptional: true },
        { name: 'started_at', type: 'number', isOptional: true },
        { name: 'ended_at', type: 'number', isOptional: true },
        { name: 'check_in_lat', type: 'number', isOptional: true },
        { name: 'check_in_lng', type: 'number', isOptional: true },
        { name: 'outcome', type: 'string', isOptional: true },
        { name: 'order_value', type: 'number', isOptional: true },
        { name: 'referrals', type: 'number', isOptional: true },
        { name: 'notes', type: 'string', isOptional: true },
        { name: 'rep_id', type: 'string', isOptional: true },
        { name: 'team_id', type: 'string', isOptional: true },
        { name: 'created_at', type: 'number' },
        { name: 'updated_at', type: 'number' },
      ],
    }),
    tableSchema({ name: 'ui_state', columns: [{ name: 'value', type: 'string' }] }),
  ],
})

class Account extends Model {
  static table = 'accounts'
  static associations = { visits: { type: 'has_many', foreignKey: 'account_id' } }
}
class Visit extends Model {
  static table = 'visits'
  static associations = { accounts: { type: 'belongs_to', key: 'account_id' } }
}
class UIState extends Model {
  static table = 'ui_state'
}

// set writes columns on a record inside create() or update(); without
// decorators this is what @field does.
function set(record, cols) {
  for (const [k, v] of Object.entries(cols)) record._setRaw(k, v)
}

function psql(url, sql) {
  execFileSync('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', url, '-c', sql], {
    env: { ...process.env, PGOPTIONS: '-c client_min_messages=warning' },
  })
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

// Server runs `fieldsync serve --demo` on a fresh database: an SQLite file
// in a temporary directory, or, when FIELDSYNC_TEST_DATABASE_URL is set, a
// schema of its own in that PostgreSQL database, dropped afterwards.
class Server {
  async start() {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fieldsync-e2e-wm-'))
    let bin = process.env.FIELDSYNC_BIN
    if (!bin) {
      bin = path.join(this.dir, 'fieldsync')
      execFileSync('go', ['build', '-o', bin, './cmd/fieldsync'], { cwd: REPO, stdio: 'inherit' })
    }
    let dbURL = 'sqlite:' + path.join(this.dir, 'fieldsync.db')
    const pg = process.env.FIELDSYNC_TEST_DATABASE_URL
    if (pg) {
      this.pg = pg
      this.schemaName = 'e2e_wm_' + crypto.randomBytes(6).toString('hex')
      psql(pg, `CREATE SCHEMA ${this.schemaName}`)
      const u = new URL(pg)
      u.searchParams.set('search_path', this.schemaName)
      dbURL = u.toString()
    }
    const port = await freePort()
    this.base = `http://127.0.0.1:${port}`
    this.log = ''
    this.proc = spawn(bin, ['serve', '--demo'], {
      cwd: this.dir,
      env: {
        ...process.env,
        FIELDSYNC_ADDR: `127.0.0.1:${port}`,
        FIELDSYNC_DATABASE_URL: dbURL,
        FIELDSYNC_JWT_SECRET: crypto.randomBytes(32).toString('hex'),
        FIELDSYNC_LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    this.proc.stdout.on('data', (b) => (this.log += b))
    this.proc.stderr.on('data', (b) => (this.log += b))
    const deadline = Date.now() + 60_000
    for (;;) {
      if (this.proc.exitCode !== null) throw new Error(`fieldsync exited with ${this.proc.exitCode}:\n${this.log}`)
      try {
        const res = await fetch(this.base + '/readyz')
        if (res.ok) break
      } catch {}
      if (Date.now() > deadline) throw new Error(`fieldsync not ready after 60 s:\n${this.log}`)
      await new Promise((r) => setTimeout(r, 100))
    }
  }

  async stop() {
    if (this.proc && this.proc.exitCode === null) {
      const exited = new Promise((r) => this.proc.once('exit', r))
      this.proc.kill('SIGTERM')
      let timer
      await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, 10_000)))])
      clearTimeout(timer)
      if (this.proc.exitCode === null) this.proc.kill('SIGKILL')
    }
    if (this.schemaName) {
      psql(this.pg, `DROP SCHEMA IF EXISTS ${this.schemaName} CASCADE`)
    }
    if (this.dir) fs.rmSync(this.dir, { recursive: true, force: true })
  }

  async login(email) {
    const deviceId = crypto.randomUUID()
    const res = await fetch(this.base + '/v1/auth/login', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ email, password: PASSWORD, device_id: deviceId }),
    })
    if (!res.ok) throw new Error(`login ${email}: ${res.status} ${await res.text()}`)
    const body = await res.json()
    return { token: body.access_token, deviceId, userId: body.user.id }
  }
}

class HTTPError extends Error {
  constructor(status, body) {
    super(`HTTP ${status}: ${body}`)
    this.status = status
    this.body = body
  }
}

// Phone is one device: its own WatermelonDB database and session. The
// pullChanges and pushChanges below are the README's. opts.schema and
// opts.modelClasses give it another app's local schema; with
// opts.pushSchemaVersion false its pushes name no schema_version, as
// WatermelonDB's pushChanges has none to send.
class Phone {
  constructor(server, name, session, opts = {}) {
    this.server = server
    this.name = name
    this.session = session
    this.hooks = {} // test hooks: beforePull, beforePush, afterPush
    this.conflicts = 0
    this.pushSchemaVersion = opts.pushSchemaVersion ?? true
    this.lastPush = null // the last push's response body
    const adapter = new LokiJSAdapter({
      schema: opts.schema ?? schema,
      dbName: name,
      useWebWorker: false,
      useIncrementalIndexedDB: false,
      extraLokiOptions: { autosave: false }, // in memory: Node has no IndexedDB
    })
    this.db = new Database({ adapter, modelClasses: opts.modelClasses ?? [Account, Visit, UIState] })
  }

  static async open(server, name, email, opts) {
    return new Phone(server, name, await server.login(email), opts)
  }

  url(params, { withSchema = true } = {}) {
    const q = new URLSearchParams({ ...(withSchema ? { schema_version: String(SCHEMA_VERSION) } : {}), ...params })
    return `${this.server.base}/v1/sync/watermelondb?${q}`
  }

  async pullChanges({ lastPulledAt, migration }) {
    if (this.hooks.beforePull) await this.hooks.beforePull()
    const res = await fetch(
      this.url({ last_pulled_at: String(lastPulledAt ?? 'null'), migration: JSON.stringify(migration ?? null) }),
      { headers: { Authorization: `Bearer ${this.session.token}` } },
    )
    if (!res.ok) throw new HTTPError(res.status, await res.text())
    const { changes, timestamp, experimentalStrategy } = await res.json()
    return experimentalStrategy ? { changes, timestamp, experimentalStrategy } : { changes, timestamp }
  }

  async postChanges(changes, lastPulledAt) {
    return fetch(this.url({ last_pulled_at: String(lastPulledAt) }, { withSchema: this.pushSchemaVersion }), {
      method: 'POST',
      headers: { Authorization: `Bearer ${this.session.token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ changes }),
    })
  }

  async pushChanges({ changes, lastPulledAt }) {
    if (this.hooks.beforePush) await this.hooks.beforePush()
    const res = await this.postChanges(changes, lastPulledAt)
    if (!res.ok) throw new HTTPError(res.status, await res.text())
    if (this.hooks.afterPush) await this.hooks.afterPush(res, changes, lastPulledAt)
    // WatermelonDB reads experimentalRejectedIds from what pushChanges
    // returns: those records stay unsynced.
    if (res.bodyUsed) return undefined
    this.lastPush = await res.json()
    return this.lastPush
  }

  // sync runs synchronize(); on 409 (someone changed a pushed record
  // since the pull) it runs it again, as the README says an app should.
  async sync({ retries = 3 } = {}) {
    for (let attempt = 0; ; attempt++) {
      try {
        await synchronize({
          database: this.db,
          pullChanges: (a) => this.pullChanges(a),
          pushChanges: (a) => this.pushChanges(a),
        })
        return
      } catch (err) {
        if (err instanceof HTTPError && err.status === 409 && attempt < retries) {
          this.conflicts++
          continue
        }
        throw err
      }
    }
  }

  async create(table, cols) {
    let rec
    await this.db.write(async () => {
      rec = await this.db.get(table).create((r) => set(r, { created_at: Date.now(), updated_at: Date.now(), ...cols }))
    })
    return rec.id
  }

  async update(table, id, cols) {
    await this.db.write(async () => {
      const rec = await this.db.get(table).find(id)
      await rec.update((r) => set(r, { updated_at: Date.now(), ...cols }))
    })
  }

  async remove(table, id) {
    await this.db.write(async () => {
      const rec = await this.db.get(table).find(id)
      await rec.markAsDeleted()
    })
  }

  // records returns a table as id → columns, without WatermelonDB's
  // bookkeeping.
  async records(table) {
    const out = {}
    for (const r of await this.db.get(table).query().fetch()) {
      const { _status, _changed, ...cols } = r._raw
      out[r.id] = cols
    }
    return out
  }

  async pending() {
    return hasUnsyncedChanges({ database: this.db })
  }
}

// serverView is what the server holds for a user, as raw records of the
// local schema's columns: a first sync over plain HTTP, outside
// WatermelonDB.
async function serverView(server, email, localSchema = schema) {
  const schema = localSchema
  const { token } = await server.login(email)
  const q = new URLSearchParams({ last_pulled_at: 'null', schema_version: String(SCHEMA_VERSION) })
  const res = await fetch(`${server.base}/v1/sync/watermelondb?${q}`, { headers: { Authorization: `Bearer ${token}` } })
  if (!res.ok) throw new HTTPError(res.status, await res.text())
  const { changes } = await res.json()
  const out = {}
  for (const t of schema.tables ? Object.values(schema.tables) : []) {
    if (!changes[t.name]) continue
    out[t.name] = {}
    for (const raw of [...changes[t.name].created, ...changes[t.name].updated]) {
      const cols = { id: raw.id }
      for (const c of t.columnArray) cols[c.name] = raw[c.name] ?? null
      out[t.name][raw.id] = cols
    }
  }
  return out
}

module.exports = { Server, Phone, HTTPError, serverView, syncErrors, schema }
