// Package portbench measures one AF_PACKET port of bpfport on a veth pair
// beside trafgen (netsniff-ng) on the same veth in the same run. It has no
// code of its own outside its test file; run it as root with
//
//	VSWITCH_PORTBENCH=1 go test -run TestPortBench -v -timeout 10m ./bench/portbench/
//
// Knobs: DUR (seconds per measurement, default 3), SIZES (default "60 1514":
// frame lengths without FCS), TRAFGEN (path, default from $PATH; the test
// installs netsniff-ng with apt-get when it is missing and INSTALL=1).
package portbench
