// Package nettest builds throw-away network namespaces and veth pairs for
// privileged tests and benchmarks of ports (Linux only). Everything it
// makes is removed by t.Cleanup, also when the test fails; traffic never
// leaves namespaces it created. Without root, or where namespaces cannot
// be created, Require skips the test and says why.
package nettest
