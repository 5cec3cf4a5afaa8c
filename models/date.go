package models

import (
	"fmt"
	"time"
)

// Date is a calendar day with no zone of its own, as a bare "2026-12-20"
// gives it. It becomes an instant only in the zone of what it is about.
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// ParseDate reads YYYY-MM-DD.
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return Date{}, fmt.Errorf("date %q: want YYYY-MM-DD", s)
	}
	return Date{t.Year(), t.Month(), t.Day()}, nil
}

// Start is the first instant of the day in loc.
func (d Date) Start(loc *time.Location) time.Time {
	return time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, loc)
}

// End is the first instant of the next day in loc: a day given as the end
// of a period counts whole.
func (d Date) End(loc *time.Location) time.Time {
	return time.Date(d.Year, d.Month, d.Day+1, 0, 0, 0, 0, loc)
}

// TimeOrDate is a bound of a period as a client may give it: an RFC 3339
// instant, or a bare date to be read in a zone the caller knows.
type TimeOrDate struct {
	At   time.Time // when Date is nil
	Date *Date
}

// ParseTimeOrDate reads an RFC 3339 time or a YYYY-MM-DD date; the error
// says both forms, for field.
func ParseTimeOrDate(field, raw string) (TimeOrDate, error) {
	if t, err := time.Parse(time.RFC3339Nano, raw); err == nil {
		return TimeOrDate{At: t.UTC()}, nil
	}
	if d, err := ParseDate(raw); err == nil {
		return TimeOrDate{Date: &d}, nil
	}
	return TimeOrDate{}, FieldInvalid(field, "must be an RFC 3339 time such as 2026-12-01T09:00:00Z or a date such as 2026-12-01")
}

// Start is the instant, or the first instant of the date in loc.
func (t TimeOrDate) Start(loc *time.Location) time.Time {
	if t.Date != nil {
		return t.Date.Start(loc).UTC()
	}
	return t.At
}

// End is the instant, or the end of the date in loc (the next midnight).
func (t TimeOrDate) End(loc *time.Location) time.Time {
	if t.Date != nil {
		return t.Date.End(loc).UTC()
	}
	return t.At
}
