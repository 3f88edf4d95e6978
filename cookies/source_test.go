package cookies

import (
	"context"
	"errors"
	"slices"
	"testing"
)

// fakeSource is a Source whose answers the test sets: cached and fresh
// current cookies, and a previous one.
type fakeSource struct {
	cached, fresh, prev string
	err, freshErr       error
	prevErr             error
}

func (f *fakeSource) ProductionCookie(_ context.Context, _ string, fresh bool) (string, error) {
	if fresh {
		return f.fresh, f.freshErr
	}
	return f.cached, f.err
}

func (f *fakeSource) PreviousProductionCookie(context.Context, string) (string, error) {
	return f.prev, f.prevErr
}

// currentOnly keeps no history, as FileStore.
type currentOnly struct{ *fakeSource }

func (currentOnly) PreviousProductionCookie(context.Context, string) (string, error) { return "", nil }

func drain(t *testing.T, a *Attempts) ([]string, error) {
	t.Helper()
	var got []string
	for range 10 {
		c, err := a.Next(context.Background())
		if err != nil {
			return got, err
		}
		got = append(got, c)
	}
	t.Fatal("Attempts.Next never ended")
	return nil, nil
}

func TestAttemptsOrder(t *testing.T) {
	boom := errors.New("vault down")
	for _, tt := range []struct {
		name    string
		src     Source
		want    []string
		wantErr error
	}{
		{"cached, fresh, previous", &fakeSource{cached: "A", fresh: "B", prev: "C"}, []string{"A", "B", "C"}, ErrNoMoreCookies},
		{"fresh equals cached", &fakeSource{cached: "A", fresh: "A", prev: "C"}, []string{"A", "C"}, ErrNoMoreCookies},
		{"mid-rotation: fresh is new, previous is the cached", &fakeSource{cached: "NEW", fresh: "NEW", prev: "OLD"}, []string{"NEW", "OLD"}, ErrNoMoreCookies},
		{"no previous version", &fakeSource{cached: "A", fresh: "A"}, []string{"A"}, ErrNoMoreCookies},
		{"fresh read fails", &fakeSource{cached: "A", freshErr: boom, prev: "C"}, []string{"A", "C"}, ErrNoMoreCookies},
		{"previous read fails", &fakeSource{cached: "A", fresh: "B", prevErr: boom}, []string{"A", "B"}, ErrNoMoreCookies},
		{"no cookie at all", &fakeSource{err: boom}, nil, boom},
		{"a source without previous versions", currentOnly{&fakeSource{cached: "A", fresh: "B", prev: "C"}}, []string{"A", "B"}, ErrNoMoreCookies},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := NewAttempts(tt.src, "eu")
			got, err := drain(t, a)
			if !slices.Equal(got, tt.want) || !errors.Is(err, tt.wantErr) {
				t.Errorf("got %q, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
			if !slices.Equal(a.Tried(), tt.want) {
				t.Errorf("Tried() = %q, want %q", a.Tried(), tt.want)
			}
		})
	}
}
