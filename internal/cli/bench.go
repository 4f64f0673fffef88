package cli

import "errors"

func (c *cmd) bench(args []string) error {
	return errors.New("bench: not built yet")
}

func (c *cmd) demo(args []string) error {
	return errors.New("demo: not built yet")
}
