// Package threadgen derives the threaded interpreter (vm/interp_threaded.go)
// from the switch interpreter (runSwitch in vm/interp.go).
//
// runSwitch dispatches every instruction through one `switch` on the
// opcode: one indirect jump that all instructions share, which the branch
// predictor cannot learn when opcodes follow each other in no repeating
// order. Go has no computed goto, so the threaded interpreter is the same
// code with the cases of the hot instructions turned into labelled blocks
// that end with their own copy of the dispatch: a switch of `goto`s to the
// next instruction's block. Each block then has its own indirect jump,
// predicted from where it is (the technique of threaded code).
//
// The generator works on the syntax tree of runSwitch, not on its text:
// it finds the dispatch switch of the loop labelled `inner`, takes each
// case as a handler (its opcodes and its statements), and decides from the
// opcodes' names which handlers are hot. Only those are threaded: each
// threaded handler's dispatch lists every threaded handler, so the code
// grows with the square of their number: threading the 67 hot handlers
// rather than all 120 makes the file a third of what it was (28,000 lines
// then) for the same instructions executed on the benchmark programs.
// Cold handlers (division, negation, sign-extending loads, atomics, JA32,
// JSET and signed or 32-bit jumps: rare in forwarding programs and in the
// loops where dispatch matters) stay in the shared switch, which every
// dispatch falls back to for them. runSwitch stays the one place where
// instructions are written.
package threadgen

import (
	"bytes"
	"errors"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/printer"
	"go/token"
	"strings"
)

// coldNames are the opcode names of handlers that are not threaded.
var coldNames = map[string]bool{
	"ALUDiv": true, "ALUMod": true, "ALUNeg": true,
	"ModeMEMSX": true, "ModeATOMIC": true, "OpJA32": true, "ClassJMP32": true,
	"JmpJSET": true, "JmpJSGT": true, "JmpJSGE": true, "JmpJSLT": true, "JmpJSLE": true,
}

// handler is one case of runSwitch's dispatch.
type handler struct {
	values  []ast.Expr // nil for the default case
	body    []ast.Stmt
	hot     bool
	invalid bool // the case of invalid opcodes that spans the byte range
}

// Generate returns interp_threaded.go for the source of interp.go.
func Generate(src []byte) ([]byte, error) {
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, "interp.go", src, 0)
	if err != nil {
		return nil, err
	}
	var fn *ast.FuncDecl
	for _, d := range file.Decls {
		if f, ok := d.(*ast.FuncDecl); ok && f.Name.Name == "runSwitch" {
			fn = f
		}
	}
	if fn == nil {
		return nil, errors.New("runSwitch not found")
	}
	loop, sw, err := dispatch(fn)
	if err != nil {
		return nil, err
	}
	g := &gen{fset: fset}
	for _, s := range sw.Body.List {
		cc := s.(*ast.CaseClause)
		h := handler{values: cc.List, body: cc.Body}
		h.invalid = len(cc.List) > 0 && allLiterals(cc.List)
		h.hot = len(cc.List) > 0 && !h.invalid && !mentions(cc.List, coldNames)
		g.hs = append(g.hs, h)
	}
	// The fetch before the switch becomes assignments, so that the
	// handlers' blocks can jump to each other (a goto may not jump over a
	// declaration).
	body := loop.Stmt.(*ast.ForStmt).Body.List
	if len(body) < 2 || body[len(body)-1] != sw {
		return nil, errors.New("runSwitch's dispatch loop has changed shape: the switch must end it")
	}
	var fetch strings.Builder
	var decls strings.Builder
	for _, s := range body[:len(body)-1] {
		if as, ok := s.(*ast.AssignStmt); ok && as.Tok == token.DEFINE {
			name := as.Lhs[0].(*ast.Ident).Name
			fmt.Fprintf(&decls, "var %s %s\n", name, map[string]string{"w": "uint64", "dst": "*uint64"}[name])
			c := *as
			c.Tok = token.ASSIGN
			s = &c
		}
		fetch.WriteString(g.node(s) + "\n")
	}
	if !strings.Contains(decls.String(), "var w uint64") || !strings.Contains(decls.String(), "var dst *uint64") {
		return nil, errors.New("runSwitch's dispatch loop must fetch w and dst")
	}
	tag := g.node(sw.Tag)

	var out strings.Builder
	out.WriteString(decls.String())
	out.WriteString("inner:\nfor {\n")
	out.WriteString(fetch.String())
	fmt.Fprintf(&out, "general:\nswitch %s {\n", tag)
	out.WriteString("// Threaded dispatch: the blocks of the hot handlers below end with\n" +
		"// their own jump to the next instruction's block; this switch starts\n" +
		"// the chain, runs the cold handlers and catches invalid opcodes.\n")
	for k, h := range g.hs {
		if h.hot {
			fmt.Fprintf(&out, "case %s:\ngoto h%d\n", g.list(h.values), k)
		}
	}
	for _, h := range g.hs {
		if !h.hot {
			g.clause(&out, h)
		}
	}
	out.WriteString("}\ncontinue\n")
	var ends string
	for _, h := range g.hs {
		if h.invalid {
			ends = g.ends(h.values)
		}
	}
	if ends == "" {
		return nil, errors.New("runSwitch must list invalid opcodes at both ends of the byte range")
	}
	for k, h := range g.hs {
		if !h.hot {
			continue
		}
		fmt.Fprintf(&out, "h%d:\n{\n", k)
		for _, s := range h.body {
			out.WriteString(g.node(s) + "\n")
		}
		out.WriteString("}\n")
		if leaves(h.body) {
			continue
		}
		out.WriteString(fetch.String())
		fmt.Fprintf(&out, "switch %s {\n", tag)
		for j, t := range g.hs {
			if t.hot {
				fmt.Fprintf(&out, "case %s:\ngoto h%d\n", g.list(t.values), j)
			}
		}
		// Both ends of the byte range make the jump table span it (no
		// range check); cold and invalid opcodes go to the shared switch.
		fmt.Fprintf(&out, "case %s:\ngoto general\n}\ngoto general\n", ends)
	}
	out.WriteString("}")

	// Replace the labelled loop in runSwitch's source by the threaded one.
	start, end := fset.Position(loop.Pos()).Offset, fset.Position(loop.End()).Offset
	fs, fe := fset.Position(fn.Pos()).Offset, fset.Position(fn.End()).Offset
	text := string(src[fs:start]) + out.String() + string(src[end:fe])
	text = strings.Replace(text, "func (p *Program) runSwitch(", "func (p *Program) Run(", 1)

	var f bytes.Buffer
	f.WriteString("// Code generated by vm/internal/threadgen from interp.go; DO NOT EDIT.\n\n")
	f.WriteString("package vm\n\nimport \"github.com/govswitch/vswitch/asm\"\n\n")
	f.WriteString("// Run runs p on the interpreter. r1 and r2 are the initial values of those\n" +
		"// registers; the other registers start at zero and r10 is the top of env's\n" +
		"// stack. The error is an *Error held by env (valid until its next run).\n//\n" +
		"// Run is runSwitch with threaded dispatch: see package vm/internal/threadgen.\n")
	f.WriteString(text + "\n")
	return format.Source(f.Bytes())
}

// dispatch finds the loop labelled inner in fn and its switch.
func dispatch(fn *ast.FuncDecl) (*ast.LabeledStmt, *ast.SwitchStmt, error) {
	var loop *ast.LabeledStmt
	ast.Inspect(fn, func(n ast.Node) bool {
		if l, ok := n.(*ast.LabeledStmt); ok && l.Label.Name == "inner" {
			loop = l
		}
		return loop == nil
	})
	if loop == nil {
		return nil, nil, errors.New("runSwitch has no loop labelled inner")
	}
	f, ok := loop.Stmt.(*ast.ForStmt)
	if !ok || len(f.Body.List) == 0 {
		return nil, nil, errors.New("inner is not a for loop")
	}
	sw, ok := f.Body.List[len(f.Body.List)-1].(*ast.SwitchStmt)
	if !ok {
		return nil, nil, errors.New("inner's loop does not end with the dispatch switch")
	}
	return loop, sw, nil
}

type gen struct {
	fset *token.FileSet
	hs   []handler
}

func (g *gen) node(n ast.Node) string {
	var b bytes.Buffer
	printer.Fprint(&b, g.fset, n)
	return b.String()
}

func (g *gen) list(es []ast.Expr) string {
	s := make([]string, len(es))
	for k, e := range es {
		s[k] = g.node(e)
	}
	return strings.Join(s, ", ")
}

// clause writes h as a case of a switch.
func (g *gen) clause(out *strings.Builder, h handler) {
	if h.values == nil {
		out.WriteString("default:\n")
	} else {
		fmt.Fprintf(out, "case %s:\n", g.list(h.values))
	}
	for _, s := range h.body {
		out.WriteString(g.node(s) + "\n")
	}
}

// ends returns the first and the last of the invalid opcodes.
func (g *gen) ends(es []ast.Expr) string {
	return g.node(es[0]) + ", " + g.node(es[len(es)-1])
}

func allLiterals(es []ast.Expr) bool {
	for _, e := range es {
		if _, ok := e.(*ast.BasicLit); !ok {
			return false
		}
	}
	return true
}

// mentions reports whether any of es names one of names.
func mentions(es []ast.Expr, names map[string]bool) bool {
	found := false
	for _, e := range es {
		ast.Inspect(e, func(n ast.Node) bool {
			if s, ok := n.(*ast.SelectorExpr); ok && names[s.Sel.Name] {
				found = true
			}
			return !found
		})
	}
	return found
}

// leaves reports whether a handler always leaves the dispatch: its last
// statement returns, breaks out of the loop or continues it.
func leaves(body []ast.Stmt) bool {
	if len(body) == 0 {
		return false
	}
	switch s := body[len(body)-1].(type) {
	case *ast.ReturnStmt:
		return true
	case *ast.BranchStmt:
		return s.Tok == token.BREAK && s.Label != nil || s.Tok == token.CONTINUE
	}
	return false
}
