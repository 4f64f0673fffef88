package scenario

import (
	"errors"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// chart is a grouped bar chart: one group per case, one bar per switch.
type chart struct {
	title, subtitle string
	ylabel          string
	groups          []string
	series          []series
	notes           []string // under the chart: switches without figures and why, partial figures
}

type series struct {
	name   string
	color  string    // #rrggbb
	values []float64 // per group; NaN where not measured
}

// palette gives every switch the same colour in every chart.
var palette = map[string]string{
	Ceiling:         "#9e9e9e",
	TrafgenCeiling:  "#cfcfcf",
	VswitchJIT:      "#1f77b4",
	VswitchInterp:   "#aec7e8",
	Bridge:          "#2ca02c",
	OVSAFPacket:     "#ff7f0e",
	OVSAFXDPGeneric: "#d62728",
	OVSAFXDPNative:  "#9467bd",
}

// errNoVeth is returned when there is no veth figure to plot.
var errNoVeth = errors.New("no veth figures to plot (the veth scenario did not run or was skipped)")

// errNoPlot is returned when there is nothing to plot at all.
var errNoPlot = errors.New("nothing to plot: the veth, hosts and scale scenarios did not run or were skipped")

// point is one figure of a chart: a bar, or why there is none.
type point struct {
	subject, group string
	value          float64
	skipped        string
}

// fill adds the groups and series of pts to c, in the order they first
// appear; a subject without any figure becomes a note.
func (c *chart) fill(pts []point) {
	var subjects []string
	skipped := map[string]string{}
	for _, p := range pts {
		if !slices.Contains(c.groups, p.group) {
			c.groups = append(c.groups, p.group)
		}
		if !slices.Contains(subjects, p.subject) {
			subjects = append(subjects, p.subject)
		}
		if p.skipped != "" && skipped[p.subject] == "" {
			skipped[p.subject] = p.skipped
		}
	}
	for _, s := range subjects {
		se := series{name: s, color: palette[s]}
		if se.color == "" {
			se.color = "#444444"
		}
		any := false
		for _, g := range c.groups {
			v := math.NaN()
			for _, p := range pts {
				if p.subject == s && p.group == g && p.skipped == "" {
					v = p.value
					any = true
				}
			}
			se.values = append(se.values, v)
		}
		if any {
			c.series = append(c.series, se)
		} else {
			c.notes = append(c.notes, "not shown: "+s+": "+strings.TrimPrefix(skipped[s], "skipped: "))
		}
	}
}

func (t *Table) vethChart() (chart, error) {
	c := chart{
		title: "vswitch bench: gen ns -> switch ns -> sink ns over veth, Mpps received (pktgen on one core)",
		subtitle: fmt.Sprintf("%d CPUs, kernel %s, load %s; %v window; the ceiling is the generator into a bare veth",
			t.Machine.CPUs, t.Machine.Kernel, t.Machine.LoadStart, t.Window),
		ylabel: "Mpps received",
	}
	var pts []point
	for _, r := range t.Veth {
		if r.Size == 0 {
			continue // a row that stands for every case: nothing ran
		}
		pts = append(pts, point{r.Switch, CaseLabel(r.Size, r.Flows), r.Mpps, r.Skipped})
	}
	c.fill(pts)
	if len(c.series) == 0 {
		return c, errNoVeth
	}
	return c, nil
}

// hostsCharts are the hosts scenario's round trips (µs) and TCP streams
// (Gbit/s), the charts that have figures.
func (t *Table) hostsCharts() []chart {
	sub := fmt.Sprintf("%d CPUs, kernel %s, load %s; two hosts (own kernel stacks, namespaces) on veth pairs to the switch",
		t.Machine.CPUs, t.Machine.Kernel, t.Machine.LoadStart)
	rtt := chart{title: "vswitch bench: ICMP echo round trip between two hosts through the switch (lower is better)",
		subtitle: sub, ylabel: "round trip, µs"}
	tcp := chart{title: "vswitch bench: one TCP stream between two hosts through the switch",
		subtitle: fmt.Sprintf("%s; %v window", sub, t.Window), ylabel: "Gbit/s"}
	var rp, tp []point
	for _, r := range t.Hosts {
		switch r.Measure {
		case MeasureRTT:
			at := " @ " + rateLabel(r.Rate) + "/s"
			rp = append(rp, point{r.Switch, "p50" + at, float64(r.P50) / 1e3, r.Skipped},
				point{r.Switch, "p99" + at, float64(r.P99) / 1e3, r.Skipped})
		case MeasureTCP:
			tp = append(tp, point{r.Switch, "Go sockets", r.Gbps, r.Skipped})
			if r.Iperf3Gbps > 0 {
				tp = append(tp, point{r.Switch, "iperf3", r.Iperf3Gbps, ""})
			}
		}
	}
	rtt.fill(rp)
	tcp.fill(tp)
	var out []chart
	for _, c := range []chart{rtt, tcp} {
		if len(c.series) > 0 {
			out = append(out, c)
		}
	}
	return out
}

// scaleChart is the scale scenario's memory per idle port.
func (t *Table) scaleChart() (chart, bool) {
	c := chart{title: "vswitch bench: resident memory per idle port (lower is better)",
		subtitle: fmt.Sprintf("%d CPUs, kernel %s; (RSS with N idle veth ports - RSS without) / ports attached",
			t.Machine.CPUs, t.Machine.Kernel),
		ylabel: "MB per idle port"}
	var pts []point
	var partial []string
	for _, r := range t.Scale {
		if r.Ports == 0 {
			continue // a row that stands for every count: nothing ran
		}
		pts = append(pts, point{r.Switch, fmt.Sprintf("%d idle ports", r.Ports), r.RSSPerPortKB / 1024, r.Skipped})
		if r.Skipped == "" && r.Attached != r.Ports {
			partial = append(partial, fmt.Sprintf("%s: %d of %d ports attached (the rest refused)", r.Switch, r.Attached, r.Ports))
		}
	}
	c.fill(pts)
	c.notes = append(c.notes, partial...)
	return c, len(c.series) > 0
}

// charts returns every chart that has figures: veth, hosts, scale.
func (t *Table) charts() []chart {
	var out []chart
	if c, err := t.vethChart(); err == nil {
		out = append(out, c)
	}
	out = append(out, t.hostsCharts()...)
	if c, ok := t.scaleChart(); ok {
		out = append(out, c)
	}
	return out
}

// HasPlot reports whether t has figures to plot.
func (t *Table) HasPlot() bool { return len(t.charts()) > 0 }

// ymax returns a round upper bound of the chart and its tick step.
func (c chart) ymax() (top, step float64) {
	m := 0.0
	for _, s := range c.series {
		for _, v := range s.values {
			if !math.IsNaN(v) {
				m = max(m, v)
			}
		}
	}
	if m <= 0 {
		return 1, 0.2
	}
	raw := m * 1.12 / 5
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, f := range []float64{1, 2, 2.5, 5, 10} {
		if step = f * p; step >= raw {
			break
		}
	}
	return math.Ceil(m*1.12/step) * step, step
}

// WritePlotFile draws the charts into path: SVG or PNG by its extension.
// With nothing to plot it writes no file and returns an error.
func (t *Table) WritePlotFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".png":
		err = t.WritePNG(f)
	default:
		err = t.WriteSVG(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

// SVG geometry.
const (
	svgW, svgH                   = 1000, 520
	svgLeft, svgRight            = 70, 20
	svgTop, svgBottom            = 70, 110
	svgFont                      = "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\""
	svgBarGap, svgGroupPadFactor = 2.0, 0.18
)

// WriteSVG draws the charts (veth, hosts, scale: those with figures) one
// under the other as grouped bar charts in one SVG document.
func (t *Table) WriteSVG(w io.Writer) error {
	cs := t.charts()
	if len(cs) == 0 {
		return errNoPlot
	}
	var b strings.Builder
	height := 0
	for _, c := range cs {
		height += c.svgHeight()
	}
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" %s>`+"\n",
		svgW, height, svgW, height, svgFont)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	y0 := 0
	for _, c := range cs {
		fmt.Fprintf(&b, `<g transform="translate(0,%d)">`+"\n", y0)
		c.svg(&b)
		b.WriteString("</g>\n")
		y0 += c.svgHeight()
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// svgHeight is the height of c's panel, its notes included.
func (c chart) svgHeight() int { return svgH + 15*len(c.notes) }

// svg draws c as one panel with its top left at 0,0.
func (c chart) svg(b *strings.Builder) {
	pw, ph := float64(svgW-svgLeft-svgRight), float64(svgH-svgTop-svgBottom)
	top, step := c.ymax()
	y := func(v float64) float64 { return svgTop + ph*(1-v/top) }
	fmt.Fprintf(b, `<text x="%d" y="24" font-size="16" font-weight="bold">%s</text>`+"\n", svgLeft, esc(c.title))
	fmt.Fprintf(b, `<text x="%d" y="44" font-size="12" fill="#555555">%s</text>`+"\n", svgLeft, esc(c.subtitle))
	// Grid and y axis.
	for v := 0.0; v <= top+step/2; v += step {
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e0e0e0"/>`+"\n", svgLeft, y(v), svgW-svgRight, y(v))
		fmt.Fprintf(b, `<text x="%d" y="%.1f" font-size="12" text-anchor="end">%s</text>`+"\n", svgLeft-6, y(v)+4, tick(v))
	}
	fmt.Fprintf(b, `<text transform="translate(18,%.1f) rotate(-90)" font-size="13" text-anchor="middle">%s</text>`+"\n", svgTop+ph/2, esc(c.ylabel))
	fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#000000"/>`+"\n", svgLeft, y(0), svgW-svgRight, y(0))
	// Bars.
	gw := pw / float64(len(c.groups))
	pad := gw * svgGroupPadFactor
	bw := (gw - 2*pad) / float64(len(c.series))
	for gi, g := range c.groups {
		x0 := svgLeft + float64(gi)*gw + pad
		for si, s := range c.series {
			v := s.values[gi]
			x := x0 + float64(si)*bw
			if math.IsNaN(v) {
				fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="10" text-anchor="middle" fill="#888888">n/a</text>`+"\n", x+bw/2, y(0)-4)
				continue
			}
			fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %s %s</title></rect>`+"\n",
				x+svgBarGap/2, y(v), bw-svgBarGap, y(0)-y(v), s.color, esc(s.name), esc(g), valueLabel(v), esc(c.ylabel))
			fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="10" text-anchor="middle">%s</text>`+"\n", x+bw/2, y(v)-3, valueLabel(v))
		}
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="13" text-anchor="middle">%s</text>`+"\n", svgLeft+(float64(gi)+0.5)*gw, y(0)+18, esc(g))
	}
	// Legend, in rows under the axis.
	lx, ly := float64(svgLeft), y(0)+44
	for _, s := range c.series {
		wd := 28 + 7.5*float64(len(s.name))
		if lx+wd > svgW-svgRight {
			lx, ly = svgLeft, ly+20
		}
		fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="14" height="14" fill="%s"/>`+"\n", lx, ly-11, s.color)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="13">%s</text>`+"\n", lx+19, ly+1, esc(s.name))
		lx += wd
	}
	for i, n := range c.notes {
		fmt.Fprintf(b, `<text x="%d" y="%.1f" font-size="11" fill="#555555">%s</text>`+"\n", svgLeft, ly+22+float64(i)*15, esc(n))
	}
}

func esc(s string) string { return html.EscapeString(s) }

func tick(v float64) string {
	s := fmt.Sprintf("%.2f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s
}

func valueLabel(v float64) string {
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	if v >= 10 {
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}
