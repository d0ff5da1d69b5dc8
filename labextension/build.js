// Builds the federated extension into ../tutor/labextension with @jupyterlab/builder, against the
// JupyterLab found in the Python environment (its staging folder pins the shared packages).
// `jupyter labextension build` does the same, but in newer environments it is a shim (jupyter_builder)
// that fetches metadata from the network; this runs offline once node_modules is installed.
const { execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');

// The Python with jupyterlab: $PYTHON (make sets it), else the one whose `jupyter` is on PATH (a
// wheel build's isolated environment, where hatch-jupyter-builder runs this), else python3.
function jupyterPython() {
  const candidates = [process.env.PYTHON];
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    const script = path.join(dir, 'jupyter');
    if (dir && fs.existsSync(script)) {
      const first = fs.readFileSync(script, 'utf8').split('\n', 1)[0];
      if (first.startsWith('#!')) {
        candidates.push(first.slice(2).trim().split(/\s+/)[0]);
      }
    }
  }
  candidates.push('python3', 'python');
  const code = 'import jupyterlab, os; print(os.path.join(os.path.dirname(jupyterlab.__file__), "staging"))';
  for (const python of candidates.filter(Boolean)) {
    try {
      return execFileSync(python, ['-c', code], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    } catch {
      // not this one
    }
  }
  throw new Error('no Python with jupyterlab found: set PYTHON to one (pip install "jupyterlab>=4.3")');
}
const staging = jupyterPython();
const args = ['--core-path', staging];
if (process.argv.includes('--development')) {
  args.push('--development');
}
execFileSync(process.execPath, [require.resolve('@jupyterlab/builder/lib/build-labextension.js'), ...args, '.'], {
  cwd: __dirname,
  stdio: 'inherit'
});
console.log(`built ${path.resolve(__dirname, '../tutor/labextension')}`);
