"""Install sl_arch: ``pip install -e .`` (see README for the pinned set-up command)."""
from setuptools import find_packages, setup

setup(
    name='sl_arch',
    version='0.1.0',
    description='Semantic Lens (instance-centric semantic alignment) video super-resolution as a BasicSR plugin',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['sl_arch', 'sl_arch.*']),
    python_requires='>=3.9',
    install_requires=[
        'torch==2.14.1',
        'torchvision==0.29.1',
        'basicsr==1.4.2',
        'numpy',
        'lmdb',
        'pyyaml',
        'opencv-python',
        'tqdm',
        'matplotlib',
        'scikit-video',
        'av',  # PyAV: FFmpeg decoding/encoding of videos with their audio (sl-infer, sl-prepare)
    ],
    extras_require={
        # pytest-xdist: scripts/test.sh runs the suite on every core (one torch thread per worker)
        'test': ['pytest', 'pytest-xdist', 'transformers', 'onnx', 'onnxruntime', 'onnxscript'],
        'mmcv': ['mmcv'],
        'segmenter': ['transformers'],
        'export': ['onnx', 'onnxruntime', 'onnxscript'],  # sl-export: ONNX export and its parity check  # SLHFSegmenterSemantics: a pretrained segmenter as the extractor
    },
    entry_points={
        'console_scripts': [
            'sl-prepare=sl_arch.prepare:main',
            'sl-train=sl_arch.train:main',
            'sl-test=sl_arch.test:main',
            'sl-infer=sl_arch.infer:main',
            'sl-bench=sl_arch.bench.compare:main',
            'sl-export=sl_arch.export:main',
        ],
    },
)
