//go:build tools

// Package engine pins the Pulumi engine the lifecycle tests run: the CLI is
// built from the same release as the @pulumi/pulumi npm package.
package engine

import (
	_ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
)
