package main

import (
	"errors"
	"fmt"
	"image/color"
	"os"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// chartPath is where the chart of a report at out goes: docs/benchmarks.md →
// docs/benchmarks-latency.png.
func chartPath(out string) string {
	return strings.TrimSuffix(out, ".md") + "-latency.png"
}

// series is one line of a chart: a name, a style and its points.
type series struct {
	name   string
	dashed bool
	color  color.Color
	pts    plotter.XYs
}

var (
	blue   = color.RGBA{R: 31, G: 119, B: 180, A: 255}
	orange = color.RGBA{R: 230, G: 110, B: 20, A: 255}
	green  = color.RGBA{R: 44, G: 150, B: 44, A: 255}
	purple = color.RGBA{R: 130, G: 80, B: 180, A: 255}
	gray   = color.RGBA{R: 120, G: 120, B: 120, A: 255}
)

func ms(d time.Duration) float64 { return max(float64(d)/1e6, 0.001) }

// latencyPoints are a load's latency quantile q (ms) against its rate, one point per level
// of clients.
func latencyPoints(rs []Result, q float64) plotter.XYs {
	pts := make(plotter.XYs, 0, len(rs))
	for _, r := range rs {
		if r.Rate() > 0 {
			pts = append(pts, plotter.XY{X: r.Rate(), Y: ms(r.Lat.Quantile(q))})
		}
	}
	return pts
}

// errNothingToChart is WriteChart's answer for a run of stages that have no latencies to
// draw (such as -only afterclose).
var errNothingToChart = errors.New("nothing to chart")

// WriteChart draws latency against load for the request stages, and the fan-out's
// delivery latency, side by side in one PNG.
func (r *Report) WriteChart(path string) error {
	var row []*plot.Plot
	if len(r.Initiate) > 0 {
		row = append(row, latencyPlot("Initiate: latency against load", "jobs/s", []series{
			{"longhaul p99", false, blue, latencyPoints(resultsOf(r.Initiate, keyLonghaul), 0.99)},
			{"longhaul p50", true, blue, latencyPoints(resultsOf(r.Initiate, keyLonghaul), 0.5)},
			{"Gin + asynq p99", false, green, latencyPoints(resultsOf(r.Initiate, keyGin), 0.99)},
			{"Node + BullMQ p99", false, purple, latencyPoints(resultsOf(r.Initiate, keyNode), 0.99)},
			{"raw asynq enqueue p99", false, orange, latencyPoints(resultsOf(r.Initiate, keyAsynq), 0.99)},
		}))
	}
	if len(r.Status) > 0 {
		row = append(row, latencyPlot("Status: latency against load", "reads/s", []series{
			{"longhaul 200 p99", false, blue, latencyPoints(resultsOf(r.Status, keyStatus200), 0.99)},
			{"longhaul 200 p50", true, blue, latencyPoints(resultsOf(r.Status, keyStatus200), 0.5)},
			{"longhaul 304 p99", false, gray, latencyPoints(resultsOf(r.Status, keyStatus304), 0.99)},
			{"Gin + asynq p99", false, green, latencyPoints(resultsOf(r.Status, keyGin), 0.99)},
			{"Node + BullMQ p99", false, purple, latencyPoints(resultsOf(r.Status, keyNode), 0.99)},
			{"raw HGETALL p99", false, orange, latencyPoints(resultsOf(r.Status, keyHGetAll), 0.99)},
		}))
	}
	if p := r.fanoutPlot(); p != nil {
		row = append(row, p)
	}
	if len(row) == 0 {
		return errNothingToChart
	}
	width := vg.Points(float64(430 * len(row)))
	img := vgimg.New(width, vg.Points(380))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: len(row), PadX: vg.Millimeter * 6, PadTop: vg.Millimeter * 2,
		PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 4}
	canvases := plot.Align([][]*plot.Plot{row}, tiles, dc)
	for i, p := range row {
		p.Draw(canvases[0][i])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// resultsOf is the load key at each level of clients.
func resultsOf(rows []RequestRow, key string) []Result {
	var out []Result
	for _, row := range rows {
		if res, ok := row.Get(key); ok {
			out = append(out, res)
		}
	}
	return out
}

// latencyPlot draws series of latency (ms, log scale) against a rate (log scale).
func latencyPlot(title, xLabel string, ss []series) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xLabel + " (points: 1, 8, 64 clients)"
	p.Y.Label.Text = "latency, ms (log)"
	p.X.Min = 0
	p.X.Tick.Marker = plainTicks
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.XOffs, p.Legend.YOffs = vg.Points(6), -vg.Points(14)
	p.Legend.TextStyle.Font.Size = vg.Points(8)
	p.Add(plotter.NewGrid())
	top := 0.0
	for _, s := range ss {
		for _, pt := range s.pts {
			top = max(top, pt.Y)
		}
	}
	p.Y.Max = top * 12 // room for the legend above the lines
	for _, s := range ss {
		if len(s.pts) == 0 {
			continue
		}
		l, pts, err := plotter.NewLinePoints(s.pts)
		if err != nil {
			continue
		}
		l.Color, pts.Color = s.color, s.color
		l.Width = vg.Points(1.5)
		if s.dashed {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
			pts.Shape = draw.CircleGlyph{}
		} else {
			pts.Shape = draw.BoxGlyph{}
		}
		p.Add(l, pts)
		p.Legend.Add(s.name, l, pts)
	}
	return p
}

// fanoutPlot draws the fan-outs' delivery latency at its quantiles, beside the plain
// Redis subscriber's in longhaul's run; nil when no fan-out delivered anything.
func (r *Report) fanoutPlot() *plot.Plot {
	type curve struct {
		name  string
		hist  Hist
		color color.Color
	}
	var curves []curve
	if f := r.fanoutOf(keyLonghaul); f != nil {
		curves = append(curves, curve{fmt.Sprintf("longhaul, %d clients", f.Conns), f.Latency, blue},
			curve{"plain Redis subscriber", f.Raw, orange})
	}
	if f := r.fanoutOf(keyNode); f != nil {
		curves = append(curves, curve{fmt.Sprintf("Node + ws, %d clients", f.Conns), f.Latency, purple})
	}
	if f := r.Scale; f != nil {
		curves = append(curves, curve{fmt.Sprintf("longhaul, %d clients", f.Conns), f.Latency, green})
	}
	p := plot.New()
	p.Title.Text = "Fan-out: delivery latency"
	p.X.Label.Text = "share of deliveries at or below, %"
	p.Y.Label.Text = "UpdateFile to reader, ms (log)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Add(plotter.NewGrid())
	top, drawn := 50.0, false
	for _, c := range curves {
		if c.hist.N == 0 {
			continue
		}
		var pts plotter.XYs
		for _, q := range []float64{0.10, 0.25, 0.50, 0.75, 0.90, 0.95, 0.99, 0.999} {
			pts = append(pts, plotter.XY{X: q * 100, Y: ms(c.hist.Quantile(q))})
		}
		pts = append(pts, plotter.XY{X: 100, Y: ms(time.Duration(c.hist.Max))})
		l, s, err := plotter.NewLinePoints(pts)
		if err != nil {
			continue
		}
		l.Color, s.Color, l.Width = c.color, c.color, vg.Points(1.5)
		p.Add(l, s)
		p.Legend.Add(c.name, l, s)
		top, drawn = max(top, ms(time.Duration(c.hist.Max))), true
	}
	if !drawn {
		return nil
	}
	target, err := plotter.NewLine(plotter.XYs{{X: 10, Y: 50}, {X: 100, Y: 50}})
	if err == nil {
		target.Color, target.Dashes = gray, []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(target)
		p.Legend.Add("p99 target, 50 ms", target)
	}
	p.Y.Max = top * 12
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.XOffs, p.Legend.YOffs = vg.Points(6), -vg.Points(14)
	p.Legend.TextStyle.Font.Size = vg.Points(8)
	return p
}

// plainTicks labels a linear axis with whole numbers.
var plainTicks = plot.TickerFunc(func(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = strconv.FormatFloat(ticks[i].Value, 'f', -1, 64)
		}
	}
	return ticks
})
