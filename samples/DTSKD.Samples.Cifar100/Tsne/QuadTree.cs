namespace DTSKD.Samples.Cifar100;

/// <summary>
/// The Barnes-Hut approximation of t-SNE's repulsion (van der Maaten, 2014): the map's points in a quadtree whose cells
/// keep their count and centre of mass, so a far cell acts as one point. Rebuilt every iteration; memory linear in n.
/// </summary>
internal sealed class QuadTree
{
    // Points closer than this share a cell instead of splitting it forever.
    private const int MaxDepth = 48;

    private readonly List<Cell> _cells = [];
    private readonly double[] _y;

    private struct Cell
    {
        public double CentreX, CentreY, Half;
        public double MassX, MassY;
        public int Count;
        public int FirstChild; // -1 for a leaf
        public int Point; // a leaf's point, -1 when empty or holding several
    }

    /// <summary>Builds the tree of the points (x, y interleaved).</summary>
    public QuadTree(double[] y)
    {
        _y = y;
        var n = y.Length / 2;
        double minX = double.MaxValue, minY = double.MaxValue, maxX = double.MinValue, maxY = double.MinValue;
        for (var i = 0; i < n; i++)
        {
            (minX, maxX) = (Math.Min(minX, y[2 * i]), Math.Max(maxX, y[2 * i]));
            (minY, maxY) = (Math.Min(minY, y[(2 * i) + 1]), Math.Max(maxY, y[(2 * i) + 1]));
        }

        var half = (Math.Max(maxX - minX, maxY - minY) / 2 * (1 + 1e-9)) + 1e-12;
        _cells.Add(new Cell { CentreX = (minX + maxX) / 2, CentreY = (minY + maxY) / 2, Half = half, FirstChild = -1, Point = -1 });
        for (var i = 0; i < n; i++)
        {
            Insert(i);
        }
    }

    /// <summary>
    /// The repulsion on point <paramref name="i"/>: adds Σ q_ij² (y_i − y_j) to <paramref name="force"/> and returns
    /// Σ q_ij, with q_ij = 1 / (1 + |y_i − y_j|²) unnormalised, cells seen under <paramref name="angle"/> taken whole.
    /// </summary>
    public double Repulsion(int i, double angle, Span<double> force)
    {
        var (xi, yi) = (_y[2 * i], _y[(2 * i) + 1]);
        var sum = 0.0;
        Span<int> stack = stackalloc int[(4 * MaxDepth) + 8];
        var top = 0;
        stack[top++] = 0;
        while (top > 0)
        {
            var cell = _cells[stack[--top]];
            if (cell.Count == 0 || (cell.FirstChild < 0 && cell.Point == i))
            {
                continue;
            }

            // A leaf at the depth limit holds several points; when i is among them, the others act.
            var (count, massX, massY) = (cell.Count, cell.MassX, cell.MassY);
            if (cell.FirstChild < 0 && cell.Point < 0 && Math.Abs(xi - cell.CentreX) <= cell.Half && Math.Abs(yi - cell.CentreY) <= cell.Half)
            {
                (count, massX, massY) = (count - 1, massX - xi, massY - yi);
                if (count == 0)
                {
                    continue;
                }
            }

            var (dx, dy) = (xi - (massX / count), yi - (massY / count));
            var d2 = (dx * dx) + (dy * dy);
            if (cell.FirstChild < 0 || (2 * cell.Half) * (2 * cell.Half) < angle * angle * d2)
            {
                var q = 1 / (1 + d2);
                sum += count * q;
                force[0] += count * q * q * dx;
                force[1] += count * q * q * dy;
                continue;
            }

            for (var c = 0; c < 4; c++)
            {
                stack[top++] = cell.FirstChild + c;
            }
        }

        return sum;
    }

    private void Insert(int point)
    {
        var (px, py) = (_y[2 * point], _y[(2 * point) + 1]);
        var at = 0;
        for (var depth = 0; ; depth++)
        {
            var cell = _cells[at];
            if (cell.FirstChild < 0 && (cell.Count == 0 || depth >= MaxDepth))
            {
                // An empty leaf takes the point; a leaf at the depth limit keeps several.
                cell.Point = cell.Count == 0 ? point : -1;
                Add(ref cell, px, py);
                _cells[at] = cell;
                return;
            }

            if (cell.FirstChild < 0)
            {
                // A leaf with one point splits; its point moves down to a child.
                var resident = cell.Point;
                cell.FirstChild = _cells.Count;
                cell.Point = -1;
                var quarter = cell.Half / 2;
                for (var c = 0; c < 4; c++)
                {
                    _cells.Add(new Cell
                    {
                        CentreX = cell.CentreX + ((c & 1) == 0 ? -quarter : quarter),
                        CentreY = cell.CentreY + ((c & 2) == 0 ? -quarter : quarter),
                        Half = quarter, FirstChild = -1, Point = -1,
                    });
                }

                var child = cell.FirstChild + Quadrant(cell, _y[2 * resident], _y[(2 * resident) + 1]);
                var moved = _cells[child];
                moved.Point = resident;
                Add(ref moved, _y[2 * resident], _y[(2 * resident) + 1]);
                _cells[child] = moved;
            }

            Add(ref cell, px, py);
            _cells[at] = cell;
            at = cell.FirstChild + Quadrant(cell, px, py);
        }
    }

    private static int Quadrant(Cell cell, double x, double y) => (x > cell.CentreX ? 1 : 0) + (y > cell.CentreY ? 2 : 0);

    private static void Add(ref Cell cell, double x, double y)
    {
        cell.MassX += x;
        cell.MassY += y;
        cell.Count++;
    }
}
