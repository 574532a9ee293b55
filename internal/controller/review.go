package controller

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/internal/deploy"
	"github.com/expsync/expsync/internal/forge"
	"github.com/expsync/expsync/internal/review"
)

// reviewCloseTimeout bounds how long stopping a repository waits for a
// status or comment being posted.
const reviewCloseTimeout = 5 * time.Second

// newForgeClient builds the forge client of spec.forge (nil without) the
// way serve builds its forge: (deploy.ForgeConfig: the API URL and the
// repository default to the Git URL's), with the token of the Secret. A
// forge the spec cannot mean stalls the object.
func newForgeClient(obj *v1alpha1.ExperimentRepository, creds *credentials) (forge.Client, error) {
	f := obj.Spec.Forge
	if f == nil {
		return nil, nil
	}
	cfg := deploy.ForgeConfig{Kind: f.Kind, URL: f.BaseURL, Repository: f.Repository, Context: f.Context}
	c, err := cfg.ClientWithToken(obj.Spec.URL, creds.forgeToken)
	if err != nil {
		return nil, stalled(v1alpha1.InvalidSpecReason, "spec.forge: %v", err)
	}
	return c, nil
}

// newReviewHook starts the review hook of a repository whose spec names a
// forge: internal/review's, as serve's (statuses with counts, one comment
// per pull request, posted in the background so a forge that is down
// delays the status, never a results commit). Its lines go to the
// controller's log, redacted of the object's secrets.
func newReviewHook(st *repoState, client forge.Client, statusContext string, log *slog.Logger) *review.Hook {
	return review.NewHook(st.engine, st.src, review.Options{Forge: client, Context: statusContext, Log: func(format string, args ...any) {
		log.Info(fmt.Sprintf(format, args...))
	}})
}

// stop ends a repository's ref workers with cause (their Jobs keep
// running) and its review hook (a post in progress gets a few seconds).
func (st *repoState) stop(cause error) {
	st.workers.Stop(cause)
	if st.review != nil {
		ctx, cancel := context.WithTimeout(context.Background(), reviewCloseTimeout)
		defer cancel()
		st.review.Close(ctx)
	}
}
