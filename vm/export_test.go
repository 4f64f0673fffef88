package vm

// RunSwitch exposes the switch interpreter (the source of the threaded
// Run) to the tests, which compare the two.
func RunSwitch(p *Program, env *Env, r1, r2 uint64) (uint64, error) { return p.runSwitch(env, r1, r2) }
