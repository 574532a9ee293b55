//go:build !linux && !darwin && !freebsd && !netbsd && !openbsd && !dragonfly

package platform

// expsync runs on Linux and builds on macOS and the BSDs (README
// "Platforms"); elsewhere the build stops here with one message.
var _ = expsync_builds_only_on_linux_macos_and_the_BSDs

const isLinux = false
