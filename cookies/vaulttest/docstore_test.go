package vaulttest

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"beamgate/cookies"
)

// TestDocStoreReplicas: two replicas (the reader policy, as serving
// gateways run) update the break-glass document at once through Vault's
// check-and-set; no update is lost.
func TestDocStoreReplicas(t *testing.T) {
	tv := startVault(t)
	ctx := ctxT(t)
	var docs []cookies.DocStore
	for i := range 2 {
		s := openStore(t, cookies.VaultConfig{Address: tv.addr, CAFile: tv.caFile,
			Auth: tv.appRole(t, fmt.Sprintf("r%d", i), "beamgate-reader", time.Hour, 2*time.Hour)})
		docs = append(docs, s.Doc(cookies.DefaultShellsPath))
	}
	const each = 10
	var wg sync.WaitGroup
	errs := make(chan error, 2*each)
	for i, d := range docs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				errs <- cookies.UpdateDoc(ctx, d, func(doc []byte) ([]byte, error) {
					var l []string
					if len(doc) > 0 {
						if err := json.Unmarshal(doc, &l); err != nil {
							return nil, err
						}
					}
					return json.Marshal(append(l, fmt.Sprintf("r%d-%d", i, j)))
				})
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	doc, v, err := docs[0].Load(ctx)
	var l []string
	if err != nil || json.Unmarshal(doc, &l) != nil || len(l) != 2*each {
		t.Fatalf("after %d updates: %d entries (version %d), %v", 2*each, len(l), v, err)
	}
}
