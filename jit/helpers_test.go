package jit_test

import (
	"github.com/govswitch/vswitch/asm"
)

var exitProg = asm.MustAssemble("mov %r0, 42\nexit")
