package main

import (
	"context"
	"errors"

	"beamgate/gateway/config"

	"go.uber.org/zap"
)

// reloadConfig re-reads the configuration file and puts it in force
// without a restart (gateway.Server.Reload). An invalid file changes
// nothing: the error, naming each key, is logged and returned.
func reloadConfig(ctx context.Context, srv *service, path string, log *zap.Logger) error {
	cfg, err := config.Load(path)
	if err != nil {
		var errs []string
		for _, e := range unjoin(err) {
			errs = append(errs, e.Error())
		}
		log.Error("configuration reload failed; the running configuration stays", zap.String("config", path), zap.Strings("errors", errs))
		return err
	}
	res := srv.srv.Reload(ctx, cfg)
	for _, k := range res.NeedsRestart {
		log.Warn("configuration key changed but needs a restart to apply", zap.String("key", k))
	}
	return nil
}

// unjoin splits an errors.Join error into its parts.
func unjoin(err error) []error {
	var j interface{ Unwrap() []error }
	if errors.As(err, &j) {
		return j.Unwrap()
	}
	return []error{err}
}

// reloaded counts a reload in the metrics (beamgate_config_reloads_total).
func (s *service) reloaded(ok bool) {
	if s.metrics != nil {
		s.metrics.IncReload(ok)
	}
}
