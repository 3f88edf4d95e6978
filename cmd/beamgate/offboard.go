package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"beamgate/audit"
	"beamgate/cookies"
	"beamgate/gateway"

	gossh "golang.org/x/crypto/ssh"
)

const offboardUsage = "usage: beamgate offboard USER --reason TEXT --config FILE [--no-rotate]\n"

// offboardCmd revokes a user in Vault (every replica's watcher then cuts
// the user's live SSH connections and relayed sessions and refuses new
// logins), then rotates the cookies of every cluster the user could reach.
func offboardCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("offboard", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, offboardUsage); fs.PrintDefaults() }
	configPath := fs.String("config", "", "configuration file (YAML) with cookies.backend: vault")
	reason := fs.String("reason", "", "why the user leaves (recorded in Vault and the audit log)")
	noRotate := fs.Bool("no-rotate", false, "revoke only; do not rotate the cookies of the user's clusters")
	var user string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		user, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if user == "" && fs.NArg() > 0 {
		user = fs.Arg(0)
		fs.Parse(fs.Args()[1:])
	}
	if user == "" || *configPath == "" || strings.TrimSpace(*reason) == "" || fs.NArg() != 0 {
		fs.Usage()
		return errors.New("USER, --reason TEXT and --config FILE are required")
	}
	env, err := openOps(ctx, *configPath, stderr)
	if err != nil {
		return err
	}
	defer env.close()

	// 1. Revoke the user name and each of its configured keys.
	entries := []cookies.Revocation{{User: user, Reason: *reason, Actor: env.actor}}
	if u := env.cfg.Users[user]; u != nil {
		for _, k := range u.Keys {
			if pk, _, _, _, err := gossh.ParseAuthorizedKey([]byte(k)); err == nil {
				entries = append(entries, cookies.Revocation{Fingerprint: gossh.FingerprintSHA256(pk), Reason: *reason, Actor: env.actor})
			}
		}
	}
	// Certificates need no users: entry: revoke the key ids and serials
	// of those this gateway's audit log saw the user log in with (the user
	// name alone already refuses every certificate naming it).
	seen := certsSeen(env.cfg.Audit.Path, user)
	for _, id := range seen.keyIDs {
		entries = append(entries, cookies.Revocation{KeyID: id, Reason: *reason, Actor: env.actor})
	}
	for _, n := range seen.serials {
		entries = append(entries, cookies.Revocation{Serial: n, Reason: *reason, Actor: env.actor})
	}
	if env.cfg.Users[user] == nil && len(seen.keyIDs) == 0 {
		fmt.Fprintf(stdout, "note: %s has no users: entry and no certificate login in this gateway's audit log; revoking the name anyway\n", user)
	}
	rv := env.vault.Revocations()
	for _, e := range entries {
		what := "user " + user
		switch {
		case e.Fingerprint != "":
			what = "key " + e.Fingerprint
		case e.KeyID != "":
			what = fmt.Sprintf("certificate key id %q", e.KeyID)
		case e.Serial != 0:
			what = fmt.Sprintf("certificate serial %d", e.Serial)
		}
		err := rv.Revoke(ctx, e)
		rec := &audit.Record{Event: audit.EventOffboard, User: user, Decision: audit.DecisionDeny, Reason: *reason,
			Detail: map[string]string{"step": "revoke", "actor": env.actor, "revoked": what}}
		if err != nil {
			rec.Decision = audit.DecisionInfo
			rec.Detail["error"] = err.Error()
		}
		// Gate: offboarding goes on (to the cookie rotation) only with the
		// revocation on record.
		if aerr := env.aud.Record(ctx, audit.Gate, rec); aerr != nil {
			return fmt.Errorf("audit: %w", aerr)
		}
		if err != nil {
			return fmt.Errorf("revoking %s: %w", what, err)
		}
		fmt.Fprintf(stdout, "revoked %s in Vault (gateways cut live sessions and refuse logins within a second)\n", what)
	}

	// 2. Cancel the user's break-glass requests and grants.
	cancelled, err := gateway.CancelShells(ctx, env.vault.Doc(env.cfg.BreakGlass.VaultPath), user, env.actor, "offboarded: "+*reason, time.Now())
	if err != nil {
		fmt.Fprintf(stdout, "note: the break-glass requests could not be updated (%v); the revocation still refuses any shell\n", err)
	}
	for _, r := range cancelled {
		rec := &audit.Record{Event: audit.EventShellCancel, User: user, Target: r.Node, Cluster: r.Cluster, Decision: audit.DecisionInfo, Reason: "offboarded: " + *reason,
			Detail: map[string]string{"request": r.ID, "actor": env.actor}}
		if aerr := env.aud.Record(ctx, audit.Gate, rec); aerr != nil {
			return fmt.Errorf("audit: %w", aerr)
		}
		fmt.Fprintf(stdout, "cancelled break-glass %s on %s\n", r.ID, r.Node)
	}

	// 3. Rotate every cluster the user could reach.
	var clusters []string
	roles := seen.roles
	if u := env.cfg.Users[user]; u != nil {
		roles = append(roles, u.Roles...)
	}
	for cl := range env.cfg.GrantsFor(roles) {
		clusters = append(clusters, cl)
	}
	slices.Sort(clusters)
	if *noRotate || len(clusters) == 0 {
		return env.offboardDone(ctx, user, *reason, clusters, nil, !*noRotate, stdout)
	}
	fmt.Fprintf(stdout, "rotating the cookies of %s\n", strings.Join(clusters, ", "))
	var failed []string
	for _, cl := range clusters {
		if err := env.rotate(ctx, cl, stdout); err != nil {
			fmt.Fprintf(stdout, "cluster %s: %v\n", cl, err)
			failed = append(failed, cl)
		}
	}
	return env.offboardDone(ctx, user, *reason, clusters, failed, true, stdout)
}

// offboardDone audits and prints the outcome.
func (e *opsEnv) offboardDone(ctx context.Context, user, reason string, clusters, failed []string, rotated bool, stdout io.Writer) error {
	rec := &audit.Record{Event: audit.EventOffboard, User: user, Decision: audit.DecisionInfo, Reason: reason,
		Detail: map[string]string{"step": "done", "actor": e.actor, "clusters": strings.Join(clusters, ","),
			"at": time.Now().UTC().Format(time.RFC3339)}}
	if len(failed) > 0 {
		rec.Detail["rotation_failed"] = strings.Join(failed, ",")
	}
	if !rotated {
		rec.Detail["rotated"] = "no (--no-rotate)"
	}
	if err := e.aud.Record(ctx, audit.Gate, rec); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if len(failed) > 0 {
		return fmt.Errorf("%s is revoked, but the cookie rotation of %s did not finish; run `beamgate cookie rotate --cluster NAME` for each", user, strings.Join(failed, ", "))
	}
	if !rotated {
		fmt.Fprintf(stdout, "offboarded %s: revoked; cookies not rotated (--no-rotate) of: %s; audit records in %s\n", user, dashList(clusters), e.auditPath)
		return nil
	}
	fmt.Fprintf(stdout, "offboarded %s: revoked; cookies rotated: %s; audit records in %s\n", user, dashList(clusters), e.auditPath)
	return nil
}

func dashList(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}

// seenCerts is what an audit log says of a user's certificate logins.
type seenCerts struct {
	keyIDs  []string
	serials []uint64
	roles   []string // the roles those logins held
}

// maxSeenCerts bounds what certsSeen collects.
const maxSeenCerts = 1000

// certsSeen reads the audit log at path (every file of its set, the
// commands' sibling logs included) for user's certificate logins. An
// unreadable file is skipped: the revocation by name stands anyway.
func certsSeen(path, user string) seenCerts {
	var out seenCerts
	files, _ := filepath.Glob(path + "*")
	for _, f := range files {
		if strings.HasSuffix(f, ".anchor") || strings.Contains(filepath.Base(f), ".torn") {
			continue
		}
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		_ = audit.Query(fh, audit.Filter{User: user, Event: audit.EventLogin, Decision: audit.DecisionAllow}, func(r audit.Record) error {
			if r.CertSerial == 0 && r.Detail["ca"] == "" {
				return nil // a plain key: revoked by fingerprint above
			}
			if r.KeyID != "" && !slices.Contains(out.keyIDs, r.KeyID) && len(out.keyIDs) < maxSeenCerts {
				out.keyIDs = append(out.keyIDs, r.KeyID)
			}
			if r.CertSerial != 0 && !slices.Contains(out.serials, r.CertSerial) && len(out.serials) < maxSeenCerts {
				out.serials = append(out.serials, r.CertSerial)
			}
			for _, role := range strings.Split(r.Detail["roles"], ",") {
				if role != "" && !slices.Contains(out.roles, role) && len(out.roles) < maxSeenCerts {
					out.roles = append(out.roles, role)
				}
			}
			return nil
		})
		fh.Close()
	}
	return out
}
