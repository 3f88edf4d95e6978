package gateway

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"beamgate/cookies"
	"beamgate/internal/beamtest"
)

// TestCertificateRoles: certificates signed with ssh-keygen by a user_cas
// CA carry the roles, so carol, who has no users: entry, logs in with the
// real OpenSSH client; each way a certificate can be wrong is refused with
// its reason in the audit log; a users: entry's roles apply only when the
// certificate grants none (or merge_user_roles says so); and a
// connection is cut when its certificate expires.
func TestCertificateRoles(t *testing.T) {
	beamtest.RequireOpenSSH(t)
	caDir := t.TempDir()
	team := beamtest.NewSSHKey(t, caDir, "team_ca")
	contractors := beamtest.NewSSHKey(t, caDir, "contractors_ca")
	rev := &fakeRevocations{snap: cookies.Snapshot{Version: 1}}
	e := startGateway(t, envOptions{
		revocations: rev, revStale: time.Minute,
		rolesYAML: "  admin:\n    clusters: [prismatic]\n    policy: readonly\n    mode: audit\n",
		extraYAML: "user_cas:\n" +
			"  - name: team\n    key: " + quoteYAML(beamtest.PublicKey(t, team)) + "\n    allowed_roles: [observer, billing, admin]\n    max_cert_validity: 1h\n" +
			"  - name: contractors\n    key: " + quoteYAML(beamtest.PublicKey(t, contractors)) + "\n    allowed_roles: [observer]\n    max_cert_validity: 1h\n",
	})
	sign := func(ca string, args ...string) string {
		t.Helper()
		k := beamtest.NewSSHKey(t, t.TempDir(), "k")
		signCert(t, ca, k, args...)
		return k
	}

	// carol: no users: entry; the certificate grants observer.
	carol := sign(team, "-I", "carol-laptop", "-n", "carol,beamgate-role:observer", "-z", "77", "-V", "-5m:+30m")
	r := e.ssh("carol", carol, nil)
	if r.code != 0 {
		t.Fatalf("carol with a role certificate: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{`you are carol (certificate "carol-laptop", serial 77)`, "role: observer (from your certificate)",
		"certificate from CA team (SHA256:", "your sessions end then", "prismatic@prod-01"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("carol's banner lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "billing@bill-01") {
		t.Errorf("carol's banner offers a cluster her certificate does not grant:\n%s", r.stdout)
	}
	e.waitAudit(`"user":"carol","key_id":"carol-laptop","cert_serial":77`, `"cert_roles":"observer"`, `"role_source":"certificate"`, `"ca":"team"`)

	for _, tc := range []struct {
		name, user string
		ca         string
		args       []string
		why        string // in the audit log
	}{
		{"validity over the maximum", "carol", team, []string{"-I", "toolong", "-n", "carol,beamgate-role:observer", "-V", "-5m:+2h"},
			"valid for 2h5m, over CA team's max_cert_validity of 1h"},
		{"valid forever", "carol", team, []string{"-I", "forever", "-n", "carol,beamgate-role:observer"},
			"valid forever, over CA team's max_cert_validity of 1h"},
		{"unknown role", "carol", team, []string{"-I", "unknownrole", "-n", "carol,beamgate-role:nosuch", "-V", "-5m:+30m"},
			`names role \"nosuch\", which is not defined under roles`},
		{"role the CA may not grant", "dave", contractors, []string{"-I", "contractor-admin", "-n", "dave,beamgate-role:admin", "-V", "-5m:+30m"},
			`CA contractors may not grant role \"admin\" (its allowed_roles: observer)`},
		{"wrong principal", "carol", team, []string{"-I", "wrongprincipal", "-n", "dave,beamgate-role:observer", "-V", "-5m:+30m"},
			`principal \"carol\" not in the set of valid principals`},
		{"expired", "carol", team, []string{"-I", "expired", "-n", "carol,beamgate-role:observer", "-V", "-2h:-1h"},
			"ssh: cert has expired"},
		{"no role and no users entry", "carol", team, []string{"-I", "norole", "-n", "carol", "-V", "-5m:+30m"},
			"the certificate grants no role (no beamgate-role:ROLE principal) and carol has no users: entry"},
		{"role principal as the user", "beamgate-role:observer", team, []string{"-I", "roleasuser", "-n", "beamgate-role:observer", "-V", "-5m:+30m"},
			"is not one beamgate accepts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := e.withT(t)
			r := e.ssh(tc.user, sign(tc.ca, tc.args...), nil, "cookie")
			if r.code != 255 || r.stdout != "" {
				t.Errorf("exit %d, stdout %q", r.code, r.stdout)
			}
			e.waitAudit(tc.why)
		})
	}

	// The holder of a refused certificate is told why: ssh prints the
	// gateway's banner (at its default LogLevel).
	long := sign(team, "-I", "toolong-told", "-n", "carol,beamgate-role:observer", "-V", "-5m:+2h")
	out, _ := exec.Command("ssh", "-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "CertificateFile="+long+"-cert.pub", "-i", long,
		"-p", e.port, "carol@127.0.0.1", "cookie").CombinedOutput()
	if !strings.Contains(string(out), "beamgate: certificate refused: valid for 2h5m, over CA team's max_cert_validity of 1h (sign it with a shorter validity") {
		t.Errorf("the refused certificate's holder is not told why:\n%s", out)
	}

	// alice has a users: entry: a certificate without role principals
	// gets her configured roles; one with a role principal gets only it.
	r = e.ssh("alice", sign(team, "-I", "alice-plain", "-n", "alice", "-V", "-5m:+30m"), nil)
	if r.code != 0 || !strings.Contains(r.stdout, "role: observer (from the gateway's users: entry for alice)") {
		t.Errorf("alice's certificate without roles: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = e.ssh("alice", sign(team, "-I", "alice-billing", "-n", "alice,beamgate-role:billing", "-V", "-5m:+30m"), nil)
	if r.code != 0 || !strings.Contains(r.stdout, "role: billing (from your certificate)") || strings.Contains(r.stdout, "prismatic@prod-01") {
		t.Errorf("alice's certificate granting billing (not merged with her entry): exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// Offboarded: the revocation by name refuses her certificates too.
	rev.revoke(cookies.Revocation{ID: "r1", User: "carol", Reason: "left", Actor: "ops"})
	deadline := time.Now().Add(10 * time.Second)
	for e.ssh("carol", carol, nil, "cookie").code == 0 {
		if time.Now().After(deadline) {
			t.Fatal("an offboarded certificate user still logs in")
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.waitAudit(`revoked: the user, key or certificate is on the revocation list (left)`)

	// A short-lived certificate: the connection is cut when it expires.
	short := sign(team, "-I", "short-lived", "-n", "erin,beamgate-role:observer", "-V", "-1m:+5s")
	fwd := exec.Command("ssh", e.sshArgs("erin", short, "-N", "-o", "ExitOnForwardFailure=yes", "-L", fmt.Sprintf("127.0.0.1:%d:prod-01:4369", beamtest.FreePort(t)))...)
	if err := fwd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { fwd.Wait(); close(exited) }()
	t.Cleanup(func() { fwd.Process.Kill(); <-exited })
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatal("the connection outlived its certificate")
	}
	e.waitAudit(`"event":"disconnect"`, `certificate \"short-lived\" (serial 0) expired at`)
}

// quoteYAML quotes s as a YAML double-quoted scalar.
func quoteYAML(s string) string {
	return `"` + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), `"`, `\"`) + `"`
}
