package cli

import "errors"

// bench runs `vswitch bench`.
func (c *cmd) bench(args []string) error {
	return errors.New("bench: not built yet")
}
