package scenario

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// PNG size.
const pngW, pngH = 12 * vg.Inch, 6 * vg.Inch

// WritePNG draws the same charts as WriteSVG, one under the other, in
// PNG (with gonum.org/v1/plot).
func (t *Table) WritePNG(w io.Writer) error {
	cs := t.charts()
	if len(cs) == 0 {
		return errNoPlot
	}
	var plots [][]*plot.Plot
	notes := 0
	for _, c := range cs {
		p, err := c.plot()
		if err != nil {
			return err
		}
		plots = append(plots, []*plot.Plot{p})
		notes = max(notes, len(c.notes))
	}
	tileH := pngH + vg.Points(11*float64(notes))
	img := vgimg.New(pngW, tileH*vg.Length(len(cs)))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: len(cs), Cols: 1, PadY: vg.Points(12), PadTop: vg.Points(6), PadBottom: vg.Points(6)}
	canvases := plot.Align(plots, tiles, dc)
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	_, err := vgimg.PngCanvas{Canvas: img}.WriteTo(w)
	return err
}

// plot builds c as a gonum plot.
func (c chart) plot() (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = c.title + "\n" + c.subtitle
	p.Title.TextStyle.Font.Size = vg.Points(13)
	p.Y.Label.Text = c.ylabel
	p.X.Label.Text = ""
	if len(c.notes) > 0 {
		p.X.Label.Text = strings.Join(c.notes, "\n")
		p.X.Label.TextStyle.Font.Size = vg.Points(9)
	}
	p.X.Tick.Label.Font.Size = vg.Points(12)
	p.Y.Tick.Label.Font.Size = vg.Points(11)
	grid := plotter.NewGrid()
	grid.Vertical.Color = nil
	p.Add(grid)
	top, step := c.ymax()
	n := float64(len(c.series))
	bw := pngW * 0.85 / vg.Length(len(c.groups)) * 0.8 / vg.Length(n)
	for i, s := range c.series {
		vals := make(plotter.Values, len(s.values))
		var xys plotter.XYs
		var labels []string
		for g, v := range s.values {
			if math.IsNaN(v) {
				continue
			}
			vals[g] = v
			xys = append(xys, plotter.XY{X: float64(g), Y: v})
			labels = append(labels, valueLabel(v))
		}
		bars, err := plotter.NewBarChart(vals, bw)
		if err != nil {
			return nil, err
		}
		bars.Color = hexColor(s.color)
		bars.LineStyle.Width = 0
		bars.Offset = (vg.Length(i) - (vg.Length(n)-1)/2) * bw
		p.Add(bars)
		p.Legend.Add(s.name, bars)
		if len(xys) > 0 {
			l, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: labels})
			if err != nil {
				return nil, err
			}
			for j := range l.TextStyle {
				l.TextStyle[j].Font.Size = vg.Points(7.5)
				l.TextStyle[j].XAlign = -0.5
			}
			l.Offset = vg.Point{X: bars.Offset, Y: vg.Points(2)}
			p.Add(l)
		}
	}
	p.NominalX(c.groups...)
	p.X.Min, p.X.Max = -0.5, float64(len(c.groups))-0.5
	p.Y.Min, p.Y.Max = 0, top*1.3 // room for the legend
	var ticks []plot.Tick
	for v := 0.0; v <= p.Y.Max+step/100; v += step {
		ticks = append(ticks, plot.Tick{Value: v, Label: tick(v)})
	}
	p.Y.Tick.Marker = plot.ConstantTicks(ticks)
	p.Legend.Top = true
	p.Legend.TextStyle.Font.Size = vg.Points(11)
	return p, nil
}

func hexColor(s string) color.Color {
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "#"), 16, 32)
	if err != nil || len(s) != 7 {
		panic(fmt.Sprintf("bad colour %q", s))
	}
	return color.RGBA{R: uint8(v >> 16), G: uint8(v >> 8), B: uint8(v), A: 255}
}
