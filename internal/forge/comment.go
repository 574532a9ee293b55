package forge

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Marker is the hidden line that finds a report's comment again: an HTML
// comment, which every supported forge leaves out of the rendered page. key
// tells reports of several deployments on one pull request apart (their
// status context, normally); it is reduced to letters, digits and ._/-.
func Marker(key string) string {
	return "<!-- expsync-report:" + markerKey.ReplaceAllString(key, "_") + " -->"
}

var markerKey = regexp.MustCompile(`[^A-Za-z0-9._/-]`)

// maxCommentPages bounds the listing of a pull request's comments: a
// forge (or a pull request) answering page after page cannot hold a
// report forever.
const maxCommentPages = 100

// remoteComment is a comment as a forge lists it.
type remoteComment struct {
	id     int64
	author string
	body   string
	url    string
}

// commentAPI is what upsert needs of a forge.
type commentAPI interface {
	// self is the login the token belongs to ("" when the forge will not
	// say: the marker alone then finds the comment).
	self(ctx context.Context) (string, error)
	// list returns every comment of the pull request, oldest first.
	list(ctx context.Context, number int) ([]remoteComment, error)
	create(ctx context.Context, number int, body string) (remoteComment, error)
	edit(ctx context.Context, number int, id int64, body string) (remoteComment, error)
}

// upsert makes the pull request hold one comment with marker and body.
// The oldest comment with the marker written by the token's user is the
// report; one someone else wrote with the marker is not ours to edit and
// is ignored. A failed create is followed by a new look-up: the forge may
// have made the comment before it failed, and a second would break "one
// comment per pull request".
func upsert(ctx context.Context, api commentAPI, number int, marker, body string) (Comment, error) {
	if marker == "" || !strings.Contains(body, marker) {
		return Comment{}, errors.New("comment body must contain its marker")
	}
	me, err := api.self(ctx)
	if err != nil {
		return Comment{}, fmt.Errorf("who is the token's user: %w", err)
	}
	find := func() (*remoteComment, error) {
		all, err := api.list(ctx, number)
		if err != nil {
			return nil, fmt.Errorf("list comments of pull request %d: %w", number, err)
		}
		for i := range all {
			c := &all[i]
			if (me == "" || strings.EqualFold(c.author, me)) && strings.Contains(c.body, marker) {
				return c, nil
			}
		}
		return nil, nil
	}
	found, err := find()
	if err != nil {
		return Comment{}, err
	}
	if found == nil {
		c, cerr := api.create(ctx, number, body)
		if cerr == nil {
			return Comment{ID: c.id, URL: c.url, Created: true}, nil
		}
		if found, err = find(); err != nil || found == nil {
			return Comment{}, fmt.Errorf("comment on pull request %d: %w", number, cerr)
		}
	}
	if strings.TrimSpace(found.body) == strings.TrimSpace(body) {
		return Comment{ID: found.id, URL: found.url}, nil
	}
	c, err := api.edit(ctx, number, found.id, body)
	if err != nil {
		return Comment{}, fmt.Errorf("edit comment %d of pull request %d: %w", found.id, number, err)
	}
	if c.url == "" {
		c.url = found.url
	}
	return Comment{ID: found.id, URL: c.url, Edited: true}, nil
}
