package render

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/tree"
)

// inputs resolves every input to its digest; repository files are hashed
// from the tree (and checked against a declared sha256).
func (p *planner) inputs(e *v1alpha1.Loaded, parts *experimentParts) error {
	for i, in := range e.Spec.Inputs {
		field := fmt.Sprintf("spec.inputs[%d]", i)
		path, _ := tree.Clean(in.Path)
		ci := contract.Input{Name: in.Name, Path: path, SHA256: in.SHA256, URI: in.URI}
		if in.File != "" {
			file, _ := tree.Clean(in.File)
			sum, blob, err := p.hashRepoFile(file)
			if err != nil {
				if errors.Is(err, tree.ErrNotExist) || errors.Is(err, tree.ErrSymlink) || errors.Is(err, tree.ErrTooLarge) || errors.Is(err, errNotRegular) {
					p.errorf(e, field+".file", "%q: %v", in.File, err)
					continue
				}
				return err
			}
			if in.SHA256 != "" && in.SHA256 != sum {
				p.errorf(e, field+".sha256", "%s does not match %q, whose sha256 is %s", in.SHA256, in.File, sum)
				continue
			}
			ci.SHA256, ci.RepoPath, ci.GitBlob = sum, file, blob
		}
		parts.inputs = append(parts.inputs, ci)
	}
	sort.Slice(parts.inputs, func(i, j int) bool { return parts.inputs[i].Name < parts.inputs[j].Name })
	for _, in := range parts.inputs {
		parts.idInputs = append(parts.idInputs, contract.IdentityInput{Name: in.Name, Path: in.Path, SHA256: in.SHA256})
	}
	return nil
}

func (p *planner) hashRepoFile(path string) (sum, blob string, err error) {
	e, err := p.r.Stat(path)
	if err != nil {
		return "", "", err
	}
	if e.Mode != tree.ModeFile && e.Mode != tree.ModeExecutable {
		if e.Mode == tree.ModeSymlink {
			return "", "", tree.ErrSymlink
		}
		return "", "", errNotRegular
	}
	if s, ok := p.sha[string(e.Hash)]; ok {
		return s, string(e.Hash), nil
	}
	data, err := p.r.ReadFile(path, MaxRepoInputBytes)
	if err != nil {
		return "", "", err
	}
	h := sha256.Sum256(data)
	s := hex.EncodeToString(h[:])
	p.sha[string(e.Hash)] = s
	return s, string(e.Hash), nil
}
