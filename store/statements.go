package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
)

// A push holds its transaction, and on PostgreSQL a connection, for as
// many round trips as it makes: a thousand phones pushing a check-in each
// left connections "idle in transaction" waiting on the server. The
// statements a unit of work sends are so a cost of their own, which tests
// hold down (Options.OnStatement). The pool below reports each statement a
// connection sends — and BEGIN, COMMIT and ROLLBACK, which are round trips
// too — whatever sent it: GORM, or the store's own array statements on the
// driver.

// countingPool opens a database/sql pool on the driver registered as
// driverName whose connections tell on each statement they send.
func countingPool(driverName, dsn string, on func(query string)) (*sql.DB, error) {
	probe, err := sql.Open(driverName, dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s driver: %w", driverName, err)
	}
	drv := probe.Driver()
	if err := probe.Close(); err != nil {
		return nil, fmt.Errorf("open %s driver: %w", driverName, err)
	}
	return sql.OpenDB(&countingConnector{drv: drv, dsn: dsn, on: on}), nil
}

type countingConnector struct {
	drv driver.Driver
	dsn string
	on  func(string)
}

func (c *countingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	var (
		conn driver.Conn
		err  error
	)
	if dc, ok := c.drv.(driver.DriverContext); ok {
		var cn driver.Connector
		if cn, err = dc.OpenConnector(c.dsn); err != nil {
			return nil, err
		}
		conn, err = cn.Connect(ctx)
	} else {
		conn, err = c.drv.Open(c.dsn)
	}
	if err != nil {
		return nil, err
	}
	if _, ok := conn.(contextConn); !ok {
		_ = conn.Close()
		return nil, fmt.Errorf("count statements: %T lacks the context methods", conn)
	}
	return &countingConn{Conn: conn, on: c.on}, nil
}

func (c *countingConnector) Driver() driver.Driver { return c.drv }

// countingConn forwards every optional interface database/sql looks for.
// Both drivers implement the context forms (countingConnector.Connect
// checks); NamedValueChecker and the rest answer driver.ErrSkip or their
// default where the driver lacks them, which makes database/sql do what it
// would have done without the wrapper.
type countingConn struct {
	driver.Conn
	on func(string)
}

// contextConn is what a driver's connection must offer to be counted.
type contextConn interface {
	driver.ConnPrepareContext
	driver.ConnBeginTx
	driver.ExecerContext
	driver.QueryerContext
}

func (c *countingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	st, err := c.Conn.(contextConn).PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	cs, ok := st.(contextStmt)
	if !ok {
		_ = st.Close()
		return nil, fmt.Errorf("count statements: %T lacks the context methods", st)
	}
	return &countingStmt{contextStmt: cs, query: query, on: c.on}, nil
}

func (c *countingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	c.on("BEGIN")
	tx, err := c.Conn.(contextConn).BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &countingTx{Tx: tx, on: c.on}, nil
}

func (c *countingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	c.on(query)
	return c.Conn.(contextConn).ExecContext(ctx, query, args)
}

func (c *countingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	c.on(query)
	return c.Conn.(contextConn).QueryContext(ctx, query, args)
}

func (c *countingConn) CheckNamedValue(v *driver.NamedValue) error {
	if n, ok := c.Conn.(driver.NamedValueChecker); ok {
		return n.CheckNamedValue(v)
	}
	return driver.ErrSkip
}

func (c *countingConn) Ping(ctx context.Context) error {
	if p, ok := c.Conn.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (c *countingConn) ResetSession(ctx context.Context) error {
	if r, ok := c.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *countingConn) IsValid() bool {
	if v, ok := c.Conn.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

type countingTx struct {
	driver.Tx
	on func(string)
}

func (t *countingTx) Commit() error   { t.on("COMMIT"); return t.Tx.Commit() }
func (t *countingTx) Rollback() error { t.on("ROLLBACK"); return t.Tx.Rollback() }

// contextStmt is what a driver's prepared statement must offer to be
// counted.
type contextStmt interface {
	driver.Stmt
	driver.StmtExecContext
	driver.StmtQueryContext
}

// countingStmt tells on each execution of a prepared statement.
type countingStmt struct {
	contextStmt
	query string
	on    func(string)
}

func (s *countingStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	s.on(s.query)
	return s.contextStmt.ExecContext(ctx, args)
}

func (s *countingStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	s.on(s.query)
	return s.contextStmt.QueryContext(ctx, args)
}

func (s *countingStmt) CheckNamedValue(v *driver.NamedValue) error {
	if n, ok := s.contextStmt.(driver.NamedValueChecker); ok {
		return n.CheckNamedValue(v)
	}
	return driver.ErrSkip
}
