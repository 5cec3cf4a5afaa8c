package main

import (
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/fieldsync/fieldsync/store"
)

// version may be set at build time with -ldflags "-X main.version=…"; it
// is used when the build info has no module version (a build from a
// directory without its VCS metadata, such as the Docker build).
var version string

// versionLine is what `fieldsync version` prints, for example
// "fieldsync v1.2.3 (rev abc1234def56, 2026-12-05T10:00:00Z, modified) schema 5".
func versionLine() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		info = nil
	}
	return formatVersion(info, version, store.SchemaVersion())
}

// moduleVersion is the version alone, as /healthz and the log report it.
func moduleVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		info = nil
	}
	return pickVersion(info, version)
}

// pickVersion is the module version the build recorded, else ldflags (the
// -ldflags version), else "(devel)".
func pickVersion(info *debug.BuildInfo, ldflags string) string {
	if info != nil && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	if ldflags != "" {
		return ldflags
	}
	return "(devel)"
}

// formatVersion writes the version line from the build info (nil when the
// binary has none): the module version (pickVersion), the VCS revision
// (12 characters, as in Go's pseudo-versions), its commit time and whether
// the tree was modified, when the build recorded them, and the schema
// version the binary migrates to.
func formatVersion(info *debug.BuildInfo, ldflags string, schema int64) string {
	var b strings.Builder
	b.WriteString("fieldsync " + pickVersion(info, ldflags))
	var vcs []string
	if info != nil {
		set := map[string]string{}
		for _, s := range info.Settings {
			set[s.Key] = s.Value
		}
		if rev := set["vcs.revision"]; rev != "" {
			vcs = append(vcs, "rev "+rev[:min(len(rev), 12)])
		}
		if t := set["vcs.time"]; t != "" {
			vcs = append(vcs, t)
		}
		if set["vcs.modified"] == "true" {
			vcs = append(vcs, "modified")
		}
	}
	if len(vcs) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(vcs, ", "))
	}
	fmt.Fprintf(&b, " schema %d", schema)
	return b.String()
}
