package otp

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"beamgate/internal/beamtest"
)

// Each release boots a real distributed node through beamtest: the chroot
// sees the test's temp dir (HOME, inetrc), shares the host's network and
// epmd, and reports the release it claims.
func TestReleasesBootNodes(t *testing.T) {
	beamtest.RequireErl(t)
	epmdPort, rc := loopbackCluster(t, "otp.beamgate.test")
	for _, rel := range Releases {
		t.Run("OTP"+rel, func(t *testing.T) {
			erl := Erl(t, rel)
			n := beamtest.Start(t, beamtest.Options{Name: "otp" + rel + "@otp.beamgate.test", LongNames: true,
				BindIP: "127.0.0.4", EpmdPort: epmdPort, Inetrc: rc, Erl: erl})
			if got := n.Eval(t, "erlang:system_info(otp_release)."); got != `"`+rel+`"` {
				t.Fatalf("otp_release = %s, want %q", got, rel)
			}
			home := n.EvalString(t, `os:getenv("HOME").`)
			if got := n.Eval(t, "filelib:is_dir(os:getenv(\"HOME\"))."); got != "true" {
				t.Fatalf("HOME %s is not visible to the node", home)
			}
			if got := n.Eval(t, "code:which(observer_backend) =/= non_existing."); got != "true" {
				t.Fatal("observer_backend (erlang-runtime-tools) is missing")
			}
			otpV, exV := Versions(t, rel)
			if !strings.HasPrefix(otpV, rel+".") && otpV != rel {
				t.Errorf("Versions(%s) = %q, %q", rel, otpV, exV)
			}
			t.Logf("OTP %s (Elixir %s) via %s", otpV, exV, erl)
		})
	}
	// Every mount a wrapper made lived in its own namespace.
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err == nil && strings.Contains(string(mounts), CacheDir()) {
		t.Errorf("a chroot mount leaked into the host:\n%s", mounts)
	}
}

func TestElixirReleases(t *testing.T) {
	beamtest.RequireElixir(t)
	epmdPort, rc := loopbackCluster(t, "iex.beamgate.test")
	for _, rel := range Releases {
		t.Run("OTP"+rel, func(t *testing.T) {
			_, want := Versions(t, rel)
			n := beamtest.Start(t, beamtest.Options{Kind: beamtest.KindElixir, Name: "iex" + rel + "@iex.beamgate.test", LongNames: true,
				BindIP: "127.0.0.4", EpmdPort: epmdPort, Inetrc: rc, Elixir: Elixir(t, rel)})
			got := n.EvalElixir(t, `{System.version(), System.otp_release()}`)
			if want == "" || got != `{"`+want+`", "`+rel+`"}` {
				t.Fatalf("Elixir on OTP %s = %s, want %s", rel, got, want)
			}
		})
	}
}

// loopbackCluster starts a private epmd and an inetrc resolving host to
// 127.0.0.4, where the test's nodes bind.
func loopbackCluster(t *testing.T, host string) (epmdPort int, inetrc string) {
	return beamtest.StartEpmd(t), beamtest.WriteInetrc(t, map[string]string{host: "127.0.0.4"})
}

func TestDebVersion(t *testing.T) {
	root := t.TempDir()
	status := "Package: erlang-base\nVersion: 1:27.3.4.1+dfsg-1\n\nPackage: elixir\nStatus: install ok installed\nVersion: 1.18.3.dfsg-3\n\n"
	if err := os.MkdirAll(filepath.Join(root, "var/lib/dpkg"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), []byte(status), 0o644); err != nil {
		t.Fatal(err)
	}
	for pkg, want := range map[string]string{"elixir": "1.18.3", "erlang-base": "27.3.4.1", "missing": ""} {
		if got := debVersion(root, pkg); got != want {
			t.Errorf("debVersion(%s) = %q, want %q", pkg, got, want)
		}
	}
}

func TestUnknownReleaseFails(t *testing.T) {
	ft := &fatalRecorder{TB: t}
	func() {
		defer func() { _ = recover() }()
		Erl(ft, "24")
	}()
	if !ft.failed {
		t.Fatal("Erl accepted an unknown release")
	}
}

// fatalRecorder turns Fatalf into a recorded failure plus a panic, so a
// test can check that a helper refuses bad input.
type fatalRecorder struct {
	testing.TB
	failed bool
}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.failed = true
	panic("fatal")
}
