// Builds the federated extension into ../tutor/labextension with @jupyterlab/builder, against the
// JupyterLab found in the Python environment (its staging folder pins the shared packages).
// `jupyter labextension build` does the same, but in newer environments it is a shim (jupyter_builder)
// that fetches metadata from the network; this runs offline once node_modules is installed.
const { execFileSync } = require('child_process');
const path = require('path');

const python = process.env.PYTHON || 'python3';
const staging = execFileSync(python, ['-c',
  'import jupyterlab, os; print(os.path.join(os.path.dirname(jupyterlab.__file__), "staging"))'
]).toString().trim();
const args = ['--core-path', staging];
if (process.argv.includes('--development')) {
  args.push('--development');
}
execFileSync(process.execPath, [require.resolve('@jupyterlab/builder/lib/build-labextension.js'), ...args, '.'], {
  cwd: __dirname,
  stdio: 'inherit'
});
console.log(`built ${path.resolve(__dirname, '../tutor/labextension')}`);
